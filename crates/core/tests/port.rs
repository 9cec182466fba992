//! Listening ports.

use pyre_nexus_core::{port, Address};

#[cfg(target_os = "linux")]
#[test]
fn a_burst_of_clients_waits_in_the_listen_queue_instead_of_overflowing_it() {
    // A std listener (backlog 128) would hold about 129 of these; the rest would be dropped
    // until the clients retransmit.
    const CLIENTS: usize = 600;
    let mut listener = port(&"ip4:127.0.0.1:0".parse::<Address>().unwrap()).unwrap();
    let address = listener.local_address().unwrap().to_string();
    let target = address.trim_start_matches("ip4:");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| std::net::TcpStream::connect(target).unwrap())
        .collect();
    let mut accepted = 0;
    while listener.accept().unwrap().is_some() {
        accepted += 1;
    }
    assert_eq!(accepted, clients.len());
}
