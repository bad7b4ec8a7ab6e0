//! The shortest path to a property's discovery: a breadth-first search that keeps no state.
//!
//! Stateright's BFS keeps every state of the frontier in memory, each with the action path
//! that reached it. The `kip-320-bug` scenario's frontier (3 brokers, two leader changes and a
//! rejoin, about 18 steps deep) holds millions of states of a few kilobytes each and outgrew
//! 14 GB. This search visits the same states in the same order and keeps, per state, only its
//! fingerprint (to see it once) and its place in the breadth-first tree: the index of its
//! parent in the previous level and the index of the action that led there, 8 bytes. Each
//! level is rebuilt when it is expanded by replaying the tree from the initial states, one
//! `next_state` per tree edge, so the price of the memory is time: every level replays the
//! levels above it (with levels growing by a factor r, about 1/(r-1) more steps than the
//! search itself).
//!
//! It is exact: the first state found violating (or, for a witness, satisfying) the property
//! in breadth-first order is at minimal depth, and the path returned is the tree path to it.
//! States and actions are visited in Stateright's single-threaded BFS order (init states in
//! order, then each state's actions in `Model::actions` order, first visit wins), so the path
//! is deterministic and is the one that search would find first.

use stateright::{Expectation, Model};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::Range;

/// One state of the search: the index of its parent in the level above, and of the action
/// (in the parent's `Model::actions` order) that leads from there to it. Level 0 holds the
/// initial states, with `action` the index among `Model::init_states`.
#[derive(Clone, Copy)]
struct Node {
    parent: u32,
    action: u32,
}

/// Fingerprints are already hashes: the set uses them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 fingerprints are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Seen = HashSet<u64, BuildHasherDefault<Identity>>;

fn fingerprint<T: Hash>(value: &T) -> u64 {
    // SipHash with fixed keys: deterministic within a build, which is all the search needs.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// What the search found: the path and the number of distinct states it saw.
pub struct Found<S, A> {
    pub path: Vec<(S, Option<A>)>,
    pub unique_states: usize,
}

/// What expanding part of a level gives: the successors not seen before it (in order, with
/// repeats: the merge keeps each one's first) and the first state there that is a discovery.
struct Expansion {
    children: Vec<(u64, Node)>,
    hit: Option<u32>,
}

/// The levels found so far: level `d` lists its nodes in the order breadth-first search meets
/// them, so in the order of their parents in level `d - 1`.
struct Tree {
    levels: Vec<Vec<Node>>,
}

impl Tree {
    /// The indices, in level `depth`, of the descendants of node `index` of level `level`.
    fn descendants(&self, level: usize, index: u32, depth: usize) -> Range<u32> {
        let (mut lo, mut hi) = (index, index + 1);
        for below in &self.levels[level + 1..=depth] {
            lo = below.partition_point(|n| n.parent < lo) as u32;
            hi = below.partition_point(|n| n.parent < hi) as u32;
        }
        lo..hi
    }

    /// The children of node `index` of level `level`: one run of the level below.
    fn children(&self, level: usize, index: u32) -> Range<usize> {
        let below = &self.levels[level + 1];
        let start = below.partition_point(|n| n.parent < index);
        start..start + below[start..].partition_point(|n| n.parent == index)
    }
}

/// Breadth-first search for the first state at which `model`'s *first* property is
/// discovered. `None` when the bounded space has none. Panics on an `eventually` property,
/// which needs the whole path's history rather than one state.
///
/// Each level is expanded by `threads` threads, each taking one contiguous share of it; their
/// successors are merged in share order, so the result does not depend on the thread count.
pub fn shortest_path<M>(model: &M, threads: usize) -> Option<Found<M::State, M::Action>>
where
    M: Model + Sync,
    M::State: Hash,
    M::Action: Clone,
{
    let mut seen = Seen::default();
    let mut tree = Tree {
        levels: vec![Vec::new()],
    };
    for (i, s) in model.init_states().into_iter().enumerate() {
        if model.within_boundary(&s) && seen.insert(fingerprint(&s)) {
            tree.levels[0].push(Node {
                parent: 0,
                action: i as u32,
            });
        }
    }
    while !tree.levels.last().expect("level 0").is_empty() {
        let depth = tree.levels.len() - 1;
        let width = tree.levels[depth].len() as u32;
        let threads = threads.clamp(1, width as usize) as u32;
        let shares: Vec<Range<u32>> = (0..threads)
            .map(|t| t * width / threads..(t + 1) * width / threads)
            .collect();
        let expansions: Vec<Expansion> = std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    let (tree, seen) = (&tree, &seen);
                    scope.spawn(move || expand(model, tree, seen, depth, share))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a search thread"))
                .collect()
        });
        if let Some(index) = expansions.iter().find_map(|e| e.hit) {
            return Some(Found {
                path: path_to(model, &tree, depth, index),
                unique_states: seen.len(),
            });
        }
        let mut next = Vec::new();
        for (fp, node) in expansions.into_iter().flat_map(|e| e.children) {
            if seen.insert(fp) {
                next.push(node);
            }
        }
        tree.levels.push(next);
    }
    None
}

/// Checks and expands the states of level `depth` whose indices are in `share`, in order; it
/// stops at the first discovery.
fn expand<M>(model: &M, tree: &Tree, seen: &Seen, depth: usize, share: Range<u32>) -> Expansion
where
    M: Model,
    M::Action: Clone,
    M::State: Hash,
{
    let property = model.properties().into_iter().next().expect("one property");
    let discovered = |state: &M::State| match property.expectation {
        Expectation::Always => !(property.condition)(model, state),
        Expectation::Sometimes => (property.condition)(model, state),
        Expectation::Eventually => unreachable!("eventually properties are not searched here"),
    };
    let mut out = Expansion {
        children: Vec::new(),
        hit: None,
    };
    let mut visit = |index: u32, state: &M::State| {
        if discovered(state) {
            out.hit = Some(index);
            return false;
        }
        let mut actions = Vec::new();
        model.actions(state, &mut actions);
        for (a, action) in actions.into_iter().enumerate() {
            let Some(child) = model.next_state(state, action) else {
                continue;
            };
            if !model.within_boundary(&child) {
                continue;
            }
            let fp = fingerprint(&child);
            if !seen.contains(&fp) {
                let node = Node {
                    parent: index,
                    action: a as u32,
                };
                out.children.push((fp, node));
            }
        }
        true
    };
    let inits = model.init_states();
    let mut walk = Walk {
        model,
        tree,
        depth,
        share,
        visit: &mut visit,
    };
    for (i, node) in tree.levels[0].iter().enumerate() {
        if !walk.descend(0, i as u32, &inits[node.action as usize], false) {
            break;
        }
    }
    out
}

/// A walk down the tree that rebuilds the states of one share of level `depth`.
struct Walk<'a, M: Model> {
    model: &'a M,
    tree: &'a Tree,
    depth: usize,
    share: Range<u32>,
    visit: &'a mut dyn FnMut(u32, &M::State) -> bool,
}

impl<M> Walk<'_, M>
where
    M: Model,
    M::Action: Clone,
{
    /// Visits, in order, the descendants in the share of node `index` of `level`, whose state
    /// is `state`; `inside` when all of them are in the share. False once `visit` said stop.
    fn descend(&mut self, level: usize, index: u32, state: &M::State, inside: bool) -> bool {
        if level == self.depth {
            return !(inside || self.share.contains(&index)) || (self.visit)(index, state);
        }
        let mut actions = None;
        for child in self.tree.children(level, index) {
            let child = child as u32;
            let mut child_inside = inside;
            if !inside {
                let range = self.tree.descendants(level + 1, child, self.depth);
                if range.end <= self.share.start || range.start >= self.share.end {
                    continue;
                }
                child_inside = self.share.start <= range.start && range.end <= self.share.end;
            }
            let actions = actions.get_or_insert_with(|| {
                let mut actions = Vec::new();
                self.model.actions(state, &mut actions);
                actions
            });
            let node = self.tree.levels[level + 1][child as usize];
            let next = self
                .model
                .next_state(state, actions[node.action as usize].clone())
                .expect("a tree edge was a transition when it was found");
            if !self.descend(level + 1, child, &next, child_inside) {
                return false;
            }
        }
        true
    }
}

/// The path from an initial state to node `index` of level `depth`, as Stateright lays paths
/// out: each state with the action taken from it, the last with none.
fn path_to<M>(
    model: &M,
    tree: &Tree,
    depth: usize,
    index: u32,
) -> Vec<(M::State, Option<M::Action>)>
where
    M: Model,
    M::Action: Clone,
{
    let mut indices = Vec::with_capacity(depth + 1);
    let mut at = index;
    for level in (0..=depth).rev() {
        let node = tree.levels[level][at as usize];
        indices.push(node.action);
        at = node.parent;
    }
    indices.reverse();
    let mut state = model.init_states().swap_remove(indices[0] as usize);
    let mut path = Vec::with_capacity(depth + 1);
    for a in &indices[1..] {
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        let action = actions.swap_remove(*a as usize);
        let next = model
            .next_state(&state, action.clone())
            .expect("a tree edge is a transition");
        path.push((state, Some(action)));
        state = next;
    }
    path.push((state, None));
    path
}
