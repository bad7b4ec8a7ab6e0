//! The fuzz targets' entry points: one per reader of bytes from outside (docs/fuzzing.md).
//!
//! They live in the library, not in `fuzz/`, so the committed corpora replay as ordinary tests
//! on a stable toolchain (`impl/tests/fuzz_corpora.rs`) through exactly the code the fuzzer
//! ran. Each entry feeds `data` to a reader and checks what the reader promises: it never
//! panics, never allocates beyond its bounds, and what it accepts means one thing (a decoded
//! value re-encodes to itself; a recovered log is recovered again unchanged). A broken promise
//! panics, which is what the fuzzer reports.

use std::cell::RefCell;
use std::path::Path;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Decoder;

use crate::core::ControllerState;
use crate::protocol::{ClientReply, ClientRequest, Control, ControlReply, PeerMessage};
use crate::storage::checkpoint::{decode_checkpoint, frame_checkpoint};
use crate::storage::log_format::{decode_prefix, RECORD_PREFIX_BYTES};
use crate::storage::{EpochCache, EpochEntry, FsyncPolicy, Storage, StorageOptions};
use crate::wire::handshake::check_credential;
use crate::wire::{
    codec, handshake_server_control, Connection, ControlHello, Credential, FrameCodec, Hello,
    HelloReply, PeerName, FRAME_BYTES_MAX,
};

/// The credential the handshake target's node admits.
const NODE_CREDENTIAL: &str = "fuzzing-operator-token";

/// Frames: `data[0]` picks a chunk size; the rest arrives in chunks of it. Whatever the
/// chunking, the same frames come out (the decoder keeps no state a chunk boundary can
/// confuse). Each frame is read as a hello, a control hello and a hello reply; then the bytes
/// go through the real accepting side of the handshake.
pub fn frames_and_handshake(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunked = split_frames(stream, usize::from(chunk % 64) + 1);
    let whole = split_frames(stream, stream.len().max(1));
    assert_eq!(chunked, whole, "frames depend on how the bytes arrived");
    for frame in &chunked.0 {
        assert!(frame.len() <= FRAME_BYTES_MAX);
        if let Ok(hello) = codec::decode::<Hello>(frame) {
            let _ = crate::wire::handshake::check_hello(&hello, "insync");
        }
        if let Ok(control) = codec::decode::<ControlHello>(frame) {
            let _ = check_credential(control.credential.as_ref(), node_admits);
        }
        let _ = codec::decode::<HelloReply>(frame);
    }
    serve_handshake(stream);
}

/// The frames of `stream` fed `chunk` bytes at a time, and whether it ended in an error.
fn split_frames(stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, bool) {
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    match codec.decode_eof(&mut buffer) {
        Ok(Some(frame)) => frames.push(frame.to_vec()),
        Ok(None) => {}
        Err(_) => return (frames, true),
    }
    (frames, false)
}

/// Whom the handshake target's node admits as an operator.
fn node_admits(credential: &Credential) -> bool {
    *credential == Credential::new(NODE_CREDENTIAL)
}

thread_local! {
    /// One runtime per fuzzing thread: building one per input would dominate the run.
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime"),
    );
}

/// `stream` as what a dialler sent, then end of stream, against a node's accepting side. Every
/// read ends at the end of stream at the latest, so no timeout is ever waited out.
fn serve_handshake(stream: &[u8]) {
    RUNTIME.with(|runtime| {
        runtime.borrow().block_on(async {
            let (mut dialler, node) = tokio::io::duplex(stream.len() + 1024);
            dialler
                .write_all(stream)
                .await
                .expect("room for every byte");
            dialler.shutdown().await.expect("a duplex shuts down");
            let accepting = Connection::new(node);
            let served =
                handshake_server_control(accepting, "insync", PeerName::Broker(1), node_admits)
                    .await;
            if let Ok((_, accepted)) = served {
                let harness = accepted.peer == PeerName::Harness;
                assert!(
                    harness || !accepted.operator,
                    "only a control connection is operator"
                );
            }
        })
    });
}

/// `data[0]` picks a type; the rest is decoded as it. Whatever decodes re-encodes and decodes
/// to the same value.
pub fn message_decoding(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 8 {
        0 => round_trip::<PeerMessage>(bytes),
        1 => round_trip::<Control>(bytes),
        2 => round_trip::<ControlReply>(bytes),
        3 => round_trip::<Hello>(bytes),
        4 => round_trip::<HelloReply>(bytes),
        5 => round_trip::<ControlHello>(bytes),
        6 => round_trip::<ClientRequest>(bytes),
        _ => round_trip::<ClientReply>(bytes),
    }
}

fn round_trip<T>(bytes: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = codec::decode::<T>(bytes) else {
        return;
    };
    let encoded = codec::encode(&value).expect("a decoded value encodes");
    assert!(encoded.len() <= bytes.len(), "re-encoding grew: {value:?}");
    let again = codec::decode::<T>(&encoded).expect("an encoded value decodes");
    assert_eq!(again, value, "decode(encode(v)) != v");
}

/// `data[1..]` as a broker's log file in `scratch` (emptied first), opened as a broker opens
/// it. Recovery keeps a prefix, reports what it cut, reads back record by record, and a second
/// open finds nothing left to cut. An odd `data[0]` first makes every frame's CRC right, so
/// the checks behind the CRC (offset contiguity, epoch order) are reached too.
pub fn log_recovery(scratch: &Path, data: &[u8]) {
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let mut file = file.to_vec();
    if mode % 2 == 1 {
        repair_crcs(&mut file);
    }
    recover(scratch, &file);
}

/// Rewrites each whole frame's CRC to match its bytes, up to the first bad length or torn end.
fn repair_crcs(file: &mut [u8]) {
    let mut position = 0;
    while let Some(prefix) = file.get(position..position + RECORD_PREFIX_BYTES) {
        let prefix: [u8; RECORD_PREFIX_BYTES] = prefix.try_into().expect("8 bytes");
        let Ok((frame, _)) = decode_prefix(prefix) else {
            return;
        };
        let end = position + frame as usize;
        let Some(body) = file.get(position + RECORD_PREFIX_BYTES..end) else {
            return;
        };
        let crc = crc32c::crc32c(body).to_le_bytes();
        file[position + 4..position + RECORD_PREFIX_BYTES].copy_from_slice(&crc);
        position = end;
    }
}

fn recover(scratch: &Path, data: &[u8]) {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).expect("scratch directory");
    let log_path = scratch.join(crate::storage::log::LOG_FILE_NAME);
    std::fs::write(&log_path, data).expect("scratch log");
    let options = StorageOptions::new(FsyncPolicy::Lazy);
    let (storage, report) = Storage::open(scratch, options).expect("recovery of any file");
    let log_end_offset = storage.log().log_end_offset();
    assert_eq!(report.log.records_kept, log_end_offset);
    let kept = std::fs::metadata(&log_path).expect("log").len();
    assert_eq!(kept + report.log.bytes_truncated, data.len() as u64);
    assert_eq!(report.log.reason.is_some(), report.log.bytes_truncated > 0);
    let mut offset = 0;
    let mut epoch = 0;
    while offset < log_end_offset {
        let records = storage
            .log()
            .read(offset, 64, u64::MAX)
            .expect("a kept record reads");
        for record in records {
            assert_eq!(record.offset, offset, "offsets are contiguous");
            assert!(record.leader_epoch >= epoch, "epochs never decrease");
            (offset, epoch) = (offset + 1, record.leader_epoch);
        }
    }
    drop(storage);
    let (again, report) = Storage::open(scratch, options).expect("a second open");
    assert_eq!(
        report.log.bytes_truncated, 0,
        "recovery is idempotent: {report:?}"
    );
    assert_eq!(again.log().log_end_offset(), log_end_offset);
}

/// `data` as each kind of checkpoint file, and as each kind's payload inside a valid frame
/// (the CRC would stop almost every input before the decoder otherwise). A decoded epoch
/// cache is validated as opening a data directory validates it.
pub fn checkpoint_reading(data: &[u8]) {
    let framed = frame_checkpoint(data);
    let files = std::iter::once(data).chain(framed.as_deref());
    for bytes in files {
        let _ = decode_checkpoint::<ControllerState>(bytes);
        let _ = decode_checkpoint::<u64>(bytes);
        if let Ok(entries) = decode_checkpoint::<Vec<EpochEntry>>(bytes) {
            if let Ok(cache) = EpochCache::from_entries(&entries) {
                assert_eq!(cache.entries(), entries, "a valid cache keeps its entries");
            }
        }
    }
}

/// A Kafka request frame (the Kafka listener's reader, `kafka::dispatch::decode`), and for a
/// produce each partition's record batch (`kafka::records::decode_produce`): no panic, and an
/// accepted batch holds 1..=512 records, each in the stored form. Run with the lazy allocator
/// (the target and the replay test set it), as the broker does: the decoder reserves by
/// stated counts (docs/kafka.md). A decoded request is not required to re-encode to itself:
/// the broker never re-encodes a request, and the crate's encoder does not always give back
/// what its decoder read (docs/fuzzing.md, `kafka_request`).
pub fn kafka_request(data: &[u8]) {
    use crate::kafka::dispatch::{decode, Decoded};
    use kafka_protocol::messages::RequestKind;
    let Ok(Decoded::Request { request, .. }) = decode(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    let RequestKind::Produce(produce) = *request else {
        return;
    };
    for topic in &produce.topic_data {
        for partition in &topic.partition_data {
            let Some(records) = &partition.records else {
                continue;
            };
            if let Ok(batch) = crate::kafka::records::decode_produce(records) {
                assert!((1..=crate::core::PRODUCE_RECORDS_MAX).contains(&batch.values.len()));
                assert!(batch
                    .values
                    .iter()
                    .all(|value| crate::kafka::records::parse_stored(value).is_some()));
            }
        }
    }
}
