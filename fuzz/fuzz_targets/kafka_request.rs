//! A Kafka request frame as the Kafka listener reads it, and a produce's record batches.
#![no_main]

/// As the broker runs: the decoder reserves by counts a peer states (docs/kafka.md).
#[global_allocator]
static ALLOCATOR: insync_impl::kafka::lazy_alloc::LazyLargeAllocator =
    insync_impl::kafka::lazy_alloc::LazyLargeAllocator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| insync_impl::fuzzing::kafka_request(data));
