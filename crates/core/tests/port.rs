//! Listening ports.

use pyre_nexus_core::{port, Address, Error};

#[test]
fn a_taken_port_is_an_error_naming_the_address() {
    let first = port(&"ip4:127.0.0.1:0".parse::<Address>().unwrap()).unwrap();
    let taken = first.local_address().unwrap().clone();
    match port(&taken) {
        Err(Error::AddressInUse { address }) => assert_eq!(address, taken.to_string()),
        Err(other) => panic!("expected AddressInUse, got {other}"),
        Ok(_) => panic!("a second listener was bound at {taken}"),
    }
}

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
