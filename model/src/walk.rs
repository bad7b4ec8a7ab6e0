//! Seeded random walks driven through `Model::actions` and `Model::next_state` (not
//! Stateright's simulation checker, which can panic while rebuilding paths).

use crate::model::{Action, InsyncModel, SystemState};
use stateright::{Expectation, Model};

/// A small deterministic generator (SplitMix64), so a seed fully determines a walk.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One random walk: the path taken and the first invariant it broke, if any.
#[derive(Clone, Debug)]
pub struct Walk {
    pub seed: u64,
    pub path: Vec<(SystemState, Option<Action>)>,
    pub violated: Option<&'static str>,
}

/// Walks at most `max_steps` steps from the initial state, choosing uniformly among enabled
/// actions that change the state, and stops at the first violated invariant or a dead end.
pub fn random_walk(model: &InsyncModel, seed: u64, max_steps: usize) -> Walk {
    let mut rng = SplitMix64::new(seed);
    let invariants: Vec<_> = model
        .properties()
        .into_iter()
        .filter(|p| p.expectation == Expectation::Always)
        .collect();
    let mut state = model.init_states().remove(0);
    let mut path = Vec::new();
    let mut actions = Vec::new();
    for _ in 0..max_steps {
        if let Some(p) = invariants.iter().find(|p| !(p.condition)(model, &state)) {
            path.push((state, None));
            return Walk {
                seed,
                path,
                violated: Some(p.name),
            };
        }
        actions.clear();
        model.actions(&state, &mut actions);
        let mut steps: Vec<(Action, SystemState)> = actions
            .drain(..)
            .filter_map(|a| model.next_state(&state, a.clone()).map(|s| (a, s)))
            .filter(|(_, s)| model.within_boundary(s))
            .collect();
        if steps.is_empty() {
            break;
        }
        let (action, next) = steps.swap_remove(rng.below(steps.len()));
        path.push((state, Some(action)));
        state = next;
    }
    let violated = invariants
        .iter()
        .find(|p| !(p.condition)(model, &state))
        .map(|p| p.name);
    path.push((state, None));
    Walk {
        seed,
        path,
        violated,
    }
}
