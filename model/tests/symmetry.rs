//! Symmetry reduction permutes brokers only, and permutes them consistently.

use insync_model::actor::State;
use insync_model::symmetry::{permute, representative};
use insync_model::walk::random_walk;
use insync_model::{Config, InsyncModel};
use stateright::actor::Id;
use stateright::Model;

/// Method: take states from seeded random walks. The representative keeps the controller at
/// index 0 and the client at N+1, holds the same broker logs (as a multiset), and every
/// property evaluates the same on it as on the original; so does an explicit swap of brokers.
#[test]
fn representative_keeps_controller_and_client_in_place() {
    let model = InsyncModel::new(Config::new(3));
    let logs = |s: &insync_model::model::SystemState| {
        let mut logs: Vec<_> = (1..=3)
            .map(|b| {
                let broker = s.actor_states[b].as_broker().unwrap();
                (broker.log.clone(), broker.hw)
            })
            .collect();
        logs.sort();
        logs
    };
    let mut checked = 0;
    for seed in 0..40 {
        let walk = random_walk(&model, seed, 80);
        for (state, _) in walk.path.iter().step_by(5) {
            let swapped = permute(state, [0, 2, 1, 3, 4].into_iter().map(Id::from).collect());
            for other in [representative(state), swapped] {
                assert!(matches!(&*other.actor_states[0], State::Controller(_)));
                assert!(matches!(&*other.actor_states[4], State::Client(_)));
                assert_eq!(logs(&other), logs(state));
                for p in model.properties() {
                    let (a, b) = ((p.condition)(&model, state), (p.condition)(&model, &other));
                    assert_eq!(a, b, "{} differs under permutation", p.name);
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100);
}
