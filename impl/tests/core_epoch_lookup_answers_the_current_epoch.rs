//! §4.4 `kip-101`: a follower asking for the leader's current epoch is answered with the
//! leader's LEO (no epoch above it starts anywhere), so a restarted follower holding every
//! record of that epoch keeps them rather than truncating and fetching them again. Through the
//! in-memory network of `core_support`.

mod core_support;

use core_support::{broker, rid, Sim};
use insync_impl::core::Variant;
use insync_impl::protocol::{Acks, OffsetsForLeaderEpochResult, PeerMessage};

/// Goal: the answer to `OffsetsForLeaderEpoch { requested_epoch: current }` is
/// `(current, LEO)`. Method: broker 2
/// replicates two records of the first leader epoch, crashes (fsync always: it keeps them) and
/// restarts; broker 1 stays leader, so the epoch broker 2 asks about is broker 1's current one.
#[test]
fn kip101_lookup_of_the_current_epoch_is_answered_with_the_leader_log_end() {
    let mut sim = Sim::new(Variant::Kip101, 2, 1);
    sim.run();
    for sequence in 0..2 {
        sim.produce(1, rid(1, sequence), Acks::All);
    }
    sim.run();
    assert_eq!(sim.record_ids(2), [rid(1, 0), rid(1, 1)], "replicated");
    let epoch = sim.view().leader_epoch;

    sim.crash(2);
    sim.restart(2);
    sim.run();
    assert_eq!(sim.view().leader, Some(1), "broker 1 stayed leader");
    assert_eq!(sim.view().leader_epoch, epoch, "in the same leader epoch");

    let answers: Vec<OffsetsForLeaderEpochResult> = sim
        .delivered
        .iter()
        .filter_map(
            |(source, target, message)| match (*source, *target, message) {
                (from, to, PeerMessage::OffsetsForLeaderEpochResponse { result })
                    if (from, to) == (broker(1), broker(2)) =>
                {
                    Some(result.clone())
                }
                _ => None,
            },
        )
        .collect();
    let requested: Vec<u32> = sim
        .delivered
        .iter()
        .filter_map(|(_, _, message)| match message {
            PeerMessage::OffsetsForLeaderEpoch { requested_epoch } => Some(*requested_epoch),
            _ => None,
        })
        .collect();
    assert_eq!(
        requested,
        [epoch],
        "the restarted follower asks about its last epoch"
    );
    let leader_log_end = OffsetsForLeaderEpochResult::Ok {
        epoch,
        end_offset: 2,
    };
    assert_eq!(answers, [leader_log_end], "answered with the leader's LEO");
    assert_eq!(sim.record_ids(2), [rid(1, 0), rid(1, 1)]);
}
