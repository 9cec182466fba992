#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pyre_nexus_fuzz::frames::frame_reader(data));
