//! A refused input is logged by the runtime, which then closes the connection (core/error.rs):
//! the operator reading that line must learn which message was refused. Goal: every peer
//! message a controller never receives is refused with an error naming that message, as its
//! variant is named in docs/protocol.md §3, and the error's text says it. Method: hand each
//! such message to a controller core as if a broker had sent it.

use insync_impl::core::{ControllerCore, CoreError, ProtocolConfig, Variant};
use insync_impl::protocol::{
    FetchResult, NodeId, OffsetsForLeaderEpochResult, PeerId, PeerMessage, View,
};

fn controller() -> ControllerCore {
    let config = ProtocolConfig {
        variant: Variant::Kip966,
        unclean_leader_election: false,
        min_insync_replicas: 1,
        brokers: vec![1, 2],
    };
    ControllerCore::new(config, None).0
}

/// Messages only brokers receive, each with the name protocol.md §3 gives it.
fn broker_bound_messages(view: &View) -> Vec<(&'static str, PeerMessage)> {
    vec![
        ("LeaderAndIsr", PeerMessage::LeaderAndIsr(view.clone())),
        (
            "AlterPartitionResponse",
            PeerMessage::AlterPartitionResponse {
                result: Ok(view.clone()),
            },
        ),
        (
            "RegisterBrokerResponse",
            PeerMessage::RegisterBrokerResponse,
        ),
        (
            "Fetch",
            PeerMessage::Fetch {
                leader_epoch: view.leader_epoch,
                fetch_offset: 0,
                last_fetched_epoch: 0,
                broker_epoch: 0,
            },
        ),
        (
            "FetchResponse",
            PeerMessage::FetchResponse {
                leader_epoch: view.leader_epoch,
                fetch_offset: 0,
                result: FetchResult::NotLeader,
            },
        ),
        (
            "OffsetsForLeaderEpoch",
            PeerMessage::OffsetsForLeaderEpoch { requested_epoch: 0 },
        ),
        (
            "OffsetsForLeaderEpochResponse",
            PeerMessage::OffsetsForLeaderEpochResponse {
                result: OffsetsForLeaderEpochResult::NotLeader,
            },
        ),
    ]
}

#[test]
fn a_message_the_controller_never_receives_is_refused_by_name() {
    let mut core = controller();
    let view = core.state().view.clone();
    for (name, message) in broker_bound_messages(&view) {
        let from = PeerId::Broker(2);
        let error = core.step_peer(from, message).expect_err(name);
        let CoreError::UnexpectedMessage { from: got, message } = &error else {
            panic!("{name} from broker 2: refused as {error:?}");
        };
        assert_eq!((*got, *message), (NodeId::from(from), name));
        assert_eq!(
            error.to_string(),
            format!("{name} is not expected from {from:?}")
        );
        assert_eq!(core.state().view, view, "a refused {name} changes nothing");
    }
}

/// The same from a node outside the replica set: refused, and still named.
#[test]
fn a_message_from_outside_the_replica_set_is_refused_by_name() {
    let mut core = controller();
    let from = PeerId::Broker(9);
    let message = PeerMessage::RegisterBroker { broker_epoch: 1 };
    match core.step_peer(from, message) {
        Err(CoreError::UnexpectedMessage { from: got, message }) => {
            assert_eq!((got, message), (NodeId::from(from), "RegisterBroker"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        !core.state().broker_epochs.contains_key(&9),
        "a stranger's registration is not recorded"
    );
}
