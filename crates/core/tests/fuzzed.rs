//! The fuzz targets' checks on stable (fuzz/README.md): every input of the committed corpus and
//! every crash kept as a regression (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`),
//! replayed; and properties of the same checks, by proptest.

#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use pyre_nexus_core::frame::{header, FrameReader, DEFAULT_MAX_FRAME, HEADER, LARGE};
use pyre_nexus_core::{Address, Error};
use std::fs;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};

/// Runs `check` on every file kept for `target`; panics naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|kind| fs::read_dir(fuzz.join(kind).join(target)).ok())
        .flatten()
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no corpus for {target} in {}",
        fuzz.display()
    );
    for file in &files {
        let data = fs::read(file).expect("a corpus file");
        let run = std::panic::catch_unwind(|| check(&data));
        assert!(run.is_ok(), "{target} fails on {}", file.display());
    }
}

#[test]
fn the_frame_reader_corpus_passes() {
    replay("frame_reader", checks::frames::frame_reader);
}

#[test]
fn the_channel_frames_corpus_passes() {
    replay("channel_frames", checks::channel::channel_frames);
}

#[test]
fn the_address_corpus_passes() {
    replay("address", checks::address::address);
}

/// Checks `property` on `cases` values of `strategy`, from a fixed seed (or PROPTEST_RNG_SEED's),
/// which a failure names.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let seed = match Config::default().rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => 21,
    };
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    if let Err(failure) = TestRunner::new(config).run(&strategy, property) {
        panic!("{name}: {failure}\n(seed {seed}: PROPTEST_RNG_SEED={seed} runs it again)");
    }
}

/// Programs for the fuzz targets' checks, drawn at random: the corpus's neighbours.
fn programs() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..400)
}

#[test]
fn the_fuzz_targets_checks_hold_for_random_programs() {
    check("frame_reader", 300, programs(), |data| {
        checks::frames::frame_reader(&data);
        Ok(())
    });
    check("channel_frames", 300, programs(), |data| {
        checks::channel::channel_frames(&data);
        Ok(())
    });
}

/// Payload lengths: mostly small, some about the size of a large frame.
fn lengths() -> impl Strategy<Value = Vec<usize>> {
    let length = prop_oneof![
        4 => 0..300usize,
        1 => (LARGE - HEADER - 3)..(LARGE - HEADER + 3),
    ];
    proptest::collection::vec(length, 0..12)
}

#[test]
fn frames_split_anywhere_come_out_whole_and_a_cut_says_where() {
    let cases = (
        lengths(),
        proptest::collection::vec(1..70_000usize, 1..20),
        any::<prop::sample::Index>(),
    );
    check(
        "frames split anywhere",
        64,
        cases,
        |(lengths, reads, cut)| {
            let mut wire = Vec::new();
            let mut ends = Vec::new(); // where each frame ends on the wire
            for (i, &len) in lengths.iter().enumerate() {
                wire.extend_from_slice(&header(len));
                wire.extend((0..len).map(|at| (at + i) as u8));
                ends.push(wire.len());
            }
            let cut = if wire.is_empty() {
                0
            } else {
                cut.index(wire.len() + 1)
            };
            let mut reader = FrameReader::new(DEFAULT_MAX_FRAME);
            let (mut fed, mut got) = (0, Vec::new());
            for size in reads.iter().cycle() {
                while let Some(range) = reader
                    .next_frame()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                {
                    got.push(reader.frame(range).to_vec());
                }
                if fed == cut {
                    break;
                }
                let spare = reader.spare();
                let n = spare.len().min(*size).min(cut - fed);
                spare[..n].copy_from_slice(&wire[fed..fed + n]);
                reader.commit(n);
                fed += n;
            }
            let whole = ends.iter().take_while(|&&end| end <= cut).count();
            prop_assert_eq!(
                got.len(),
                whole,
                "frames out of {} cut at {}",
                wire.len(),
                cut
            );
            for (i, payload) in got.iter().enumerate() {
                prop_assert_eq!(payload.len(), lengths[i]);
                prop_assert!(payload
                    .iter()
                    .enumerate()
                    .all(|(at, &b)| b == (at + i) as u8));
            }
            let start = if whole == 0 { 0 } else { ends[whole - 1] };
            match reader.truncation() {
                None => prop_assert_eq!(cut, start, "a cut between frames is no truncation"),
                Some(Error::Truncated { received, expected }) => {
                    prop_assert_eq!(received, cut - start);
                    let next = ends.get(whole).map_or(0, |end| end - start);
                    prop_assert_eq!(expected, if received < HEADER { HEADER } else { next });
                }
                Some(other) => prop_assert!(false, "a cut reported as {other:?}"),
            }
            Ok(())
        },
    );
}

#[test]
fn every_socket_address_shown_parses_back_to_itself() {
    let v6 = any::<[u16; 8]>()
        .prop_map(|s| Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]));
    let inet = prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (v6, any::<u16>()).prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))),
    ];
    check("socket addresses", 1000, inet, |inet| {
        let address = Address::Inet(inet);
        let shown = address.to_string();
        let again: Address = shown
            .parse()
            .map_err(|e: Error| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again, address, "shown as {}", shown);
        Ok(())
    });
}

#[test]
fn text_made_of_address_pieces_parses_or_is_refused_plainly() {
    // Texts of the characters addresses are made of, so that most come near one.
    let pieces = prop::sample::select(vec![
        "ip4:",
        "ip6:",
        "unix:",
        "local:",
        "inet:",
        ":",
        "[",
        "]",
        "::",
        "1",
        "0",
        "255",
        ".",
        "127.0.0.1",
        "::1",
        "ffff",
        "%",
        "65535",
        "65536",
        "-",
        "+",
        " ",
        "/",
        "a",
        "é",
        "\0",
    ]);
    check(
        "address texts",
        2000,
        proptest::collection::vec(pieces, 0..8),
        |pieces| {
            checks::address::address(pieces.concat().as_bytes());
            Ok(())
        },
    );
}
