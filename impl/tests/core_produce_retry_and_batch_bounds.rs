//! §4.5 from the client's side: what an idempotent retry is answered, and which batches a
//! leader refuses outright. Through the in-memory network of `core_support`.

mod core_support;

use core_support::{rid, Sim, CLIENT};
use insync_impl::core::{CoreError, Variant, PRODUCE_RECORDS_MAX};
use insync_impl::protocol::{Acks, ClientRequest, NodeId, ProduceResult};

/// Leader 1 of three brokers (min ISR 2) with broker 3 cut off and broker 2 not yet fetching
/// what follows: nothing new can commit.
fn leader_that_cannot_commit() -> Sim {
    let mut sim = Sim::new(Variant::Kip966, 3, 2);
    sim.run();
    sim.block(2);
    sim.block(3);
    sim
}

/// §4.5 step 3. Goal: an acks=all retry of a record in the log but not yet committed is not
/// acknowledged until the HW passes it (a client that retried after a lost answer must not be
/// told "committed" early), and an acks=1 retry of it is answered at once with its offset.
#[test]
fn a_retry_is_acknowledged_as_its_acks_promise() {
    let mut sim = leader_that_cannot_commit();
    sim.produce(1, rid(1, 0), Acks::All);
    sim.produce(1, rid(1, 0), Acks::All);
    assert_eq!(
        sim.next_produce_result(),
        None,
        "uncommitted: no answer yet"
    );
    assert_eq!(sim.log_end_offset(1), 1, "the retry appended nothing");

    sim.produce(1, rid(1, 0), Acks::One);
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::Ok { offset: 0 })),
        "acks=1: in the leader's log is enough"
    );

    sim.unblock(2);
    sim.unblock(3);
    sim.run();
    let committed = Some((rid(1, 0), ProduceResult::Ok { offset: 0 }));
    assert_eq!(sim.next_produce_result(), committed, "the first request");
    assert_eq!(sim.next_produce_result(), committed, "its retry");
    assert_eq!(sim.next_produce_result(), None);
}

fn produce(values: usize, first_sequence: u32) -> ClientRequest {
    ClientRequest::Produce {
        producer_id: 1,
        first_sequence,
        values: vec![b"v".to_vec(); values],
        acks: Acks::One,
    }
}

fn refusal(sim: &mut Sim, request: ClientRequest) -> &'static str {
    match sim.broker_mut(1).step_client(CLIENT, request) {
        Err(CoreError::InvalidRequest {
            from,
            message,
            reason,
        }) => {
            assert_eq!((from, message), (NodeId::Client(CLIENT), "Produce"));
            reason
        }
        other => panic!("expected an invalid-request refusal, got {other:?}"),
    }
}

/// Goal: an empty batch, one above `PRODUCE_RECORDS_MAX` records, and one whose sequences
/// overflow are refused as invalid requests (the runtime logs them and closes the client's
/// connection) and append nothing; a batch of exactly `PRODUCE_RECORDS_MAX` is appended.
#[test]
fn batches_outside_the_bounds_are_refused_and_append_nothing() {
    let mut sim = leader_that_cannot_commit();
    assert_eq!(refusal(&mut sim, produce(0, 0)), "empty batch");
    assert_eq!(
        refusal(&mut sim, produce(PRODUCE_RECORDS_MAX + 1, 0)),
        "batch larger than PRODUCE_RECORDS_MAX"
    );
    assert_eq!(
        refusal(&mut sim, produce(2, u32::MAX)),
        "sequence numbers overflow u32"
    );
    assert_eq!(sim.log_end_offset(1), 0, "nothing appended");

    sim.client_send(1, produce(PRODUCE_RECORDS_MAX, 0));
    assert_eq!(
        sim.next_produce_result(),
        Some((rid(1, 0), ProduceResult::Ok { offset: 0 }))
    );
    assert_eq!(sim.log_end_offset(1), PRODUCE_RECORDS_MAX as u64);
}
