//! A linearizability checker: Wing & Gong's search with Lowe's memoization (the algorithm of
//! Knossos' "wgl" and of porcupine), over any deterministic sequential [`Model`].
//!
//! An operation has an invocation time and, if its outcome is known, a completion time and a
//! result. An operation whose outcome is unknown (a timeout, a lost connection) has no
//! completion: it may have taken effect at any point after its invocation, or never. The search
//! may therefore linearize it anywhere after its invocation (the model then applies it as having
//! succeeded) or leave it out; a history is linearizable when every completed operation can be
//! placed, in an order that respects real time, such that the model accepts every result.
//!
//! Linearizability is local (Herlihy & Wing), so callers check each key's history on its own.
//! The search is exponential in the worst case; a step budget bounds it, and running out is
//! reported as [`Verdict::Inconclusive`], never as a pass.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification. `step` is deterministic: the state after `op` took effect and
/// returned what it returned, or `None` if the model cannot produce that result from `state`.
/// For an operation with an unknown outcome, `step` is asked for the state after it took effect
/// (its not taking effect is the search leaving it out).
pub trait Model {
    type State: Clone + Eq + Hash;
    type Op;
    fn init(&self) -> Self::State;
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
}

/// One operation of a history. Times are any monotonic clock (nanoseconds since the start).
#[derive(Clone, Debug)]
pub struct Timed<O> {
    pub op: O,
    pub invoke: u64,
    /// `None`: the outcome is unknown, the operation may still take effect at any later time.
    pub complete: Option<u64>,
    /// Who did it (client, node): for the reader of a report, ignored by the search.
    pub who: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No linearization exists. `stuck` is the index of a completed operation that could not be
    /// placed at the furthest point the search reached, `placed` how many had been placed then.
    Violation {
        stuck: usize,
        placed: usize,
    },
    /// The step budget ran out before the search finished.
    Inconclusive {
        steps: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Call,
    Return,
}

const NIL: usize = usize::MAX;

struct Node {
    kind: Kind,
    op: usize,
    /// For a call: its return node, if the operation completed.
    ret: usize,
    prev: usize,
    next: usize,
}

/// Checks `history` against `model`, giving up after `budget` search steps.
pub fn check<M: Model>(model: &M, history: &[Timed<M::Op>], budget: u64) -> Verdict {
    // Calls and returns in time order; a call at the same instant as a return goes first, so
    // touching operations count as concurrent (the lenient reading).
    let mut events: Vec<(u64, Kind, usize)> = Vec::with_capacity(history.len() * 2);
    for (i, h) in history.iter().enumerate() {
        events.push((h.invoke, Kind::Call, i));
        if let Some(c) = h.complete {
            events.push((c.max(h.invoke), Kind::Return, i));
        }
    }
    events.sort_by_key(|(t, k, i)| (*t, *k == Kind::Return, *i));
    // Node 0 is the list head.
    let mut nodes: Vec<Node> = Vec::with_capacity(events.len() + 1);
    nodes.push(Node {
        kind: Kind::Call,
        op: NIL,
        ret: NIL,
        prev: NIL,
        next: NIL,
    });
    let mut call_node = vec![NIL; history.len()];
    for (_, kind, op) in &events {
        let id = nodes.len();
        let prev = id - 1;
        nodes[prev].next = id;
        nodes.push(Node {
            kind: *kind,
            op: *op,
            ret: NIL,
            prev,
            next: NIL,
        });
        match kind {
            Kind::Call => call_node[*op] = id,
            Kind::Return => nodes[call_node[*op]].ret = id,
        }
    }

    // The set of linearized operations, for the cache, as a Zobrist hash: each operation has
    // a random 128-bit key, the set is the XOR of its members' keys, updated in O(1) per step.
    // (A bitset would cost n/64 words per cached entry: gigabytes for a long soak's history.)
    // Two different sets collide with probability 2^-128 per pair: negligible.
    let keys: Vec<u128> = (0..history.len() as u64)
        .map(|i| (u128::from(splitmix(2 * i)) << 64) | u128::from(splitmix(2 * i + 1)))
        .collect();
    let mut linearized = 0u128;
    let mut placed = 0usize;
    let mut state = model.init();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut cache: HashSet<(u128, M::State)> = HashSet::new();
    let mut steps = 0u64;
    let mut furthest = (0usize, NIL);

    let mut entry = nodes[0].next;
    while nodes[0].next != NIL {
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive { steps };
        }
        if entry == NIL {
            // Only calls of operations with unknown outcomes are left: leave them out.
            return Verdict::Linearizable;
        }
        match nodes[entry].kind {
            Kind::Call => {
                let op = nodes[entry].op;
                if let Some(next) = model.step(&state, &history[op].op) {
                    linearized ^= keys[op];
                    if cache.insert((linearized, next.clone())) {
                        stack.push((entry, std::mem::replace(&mut state, next)));
                        placed += 1;
                        lift(&mut nodes, entry);
                        entry = nodes[0].next;
                        continue;
                    }
                    linearized ^= keys[op];
                }
                entry = nodes[entry].next;
            }
            Kind::Return => {
                if placed >= furthest.0 {
                    furthest = (placed, nodes[entry].op);
                }
                let Some((call, previous)) = stack.pop() else {
                    return Verdict::Violation {
                        stuck: furthest.1,
                        placed: furthest.0,
                    };
                };
                linearized ^= keys[nodes[call].op];
                placed -= 1;
                state = previous;
                unlift(&mut nodes, call);
                entry = nodes[call].next;
            }
        }
    }
    Verdict::Linearizable
}

/// SplitMix64: well-mixed pseudo-random keys from a counter.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Takes a call and its return out of the list.
fn lift(nodes: &mut [Node], call: usize) {
    for id in [call, nodes[call].ret] {
        if id == NIL {
            continue;
        }
        let (prev, next) = (nodes[id].prev, nodes[id].next);
        nodes[prev].next = next;
        if next != NIL {
            nodes[next].prev = prev;
        }
    }
}

/// Puts them back, in reverse order of [`lift`].
fn unlift(nodes: &mut [Node], call: usize) {
    for id in [nodes[call].ret, call] {
        if id == NIL {
            continue;
        }
        let (prev, next) = (nodes[id].prev, nodes[id].next);
        nodes[prev].next = id;
        if next != NIL {
            nodes[next].prev = id;
        }
    }
}

/// The same question answered by brute force (every real-time-respecting order of every subset
/// that includes all completed operations), for testing [`check`] on small histories.
pub fn check_brute_force<M: Model>(model: &M, history: &[Timed<M::Op>]) -> bool {
    fn go<M: Model>(model: &M, h: &[Timed<M::Op>], state: &M::State, done: &mut Vec<bool>) -> bool {
        let completed_left = h
            .iter()
            .enumerate()
            .any(|(i, o)| !done[i] && o.complete.is_some());
        if !completed_left {
            return true;
        }
        for i in 0..h.len() {
            if done[i] {
                continue;
            }
            // `i` may go next only if no pending operation completed before `i` was invoked.
            let blocked = h
                .iter()
                .enumerate()
                .any(|(j, o)| !done[j] && j != i && o.complete.is_some_and(|c| c < h[i].invoke));
            if blocked {
                continue;
            }
            if let Some(next) = model.step(state, &h[i].op) {
                done[i] = true;
                if go(model, h, &next, done) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    go(
        model,
        history,
        &model.init(),
        &mut vec![false; history.len()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A register with reads, writes and compare-and-set, the textbook example.
    struct Register;

    #[derive(Clone, Debug)]
    enum Op {
        Read(u8),
        Write(u8),
        /// cas(from, to) -> succeeded?
        Cas(u8, u8, bool),
    }

    impl Model for Register {
        type State = u8;
        type Op = Op;
        fn init(&self) -> u8 {
            0
        }
        fn step(&self, s: &u8, op: &Op) -> Option<u8> {
            match *op {
                Op::Read(v) => (v == *s).then_some(*s),
                Op::Write(v) => Some(v),
                Op::Cas(from, to, ok) => match (from == *s, ok) {
                    (true, true) => Some(to),
                    (false, false) => Some(*s),
                    _ => None,
                },
            }
        }
    }

    fn t(op: Op, invoke: u64, complete: Option<u64>) -> Timed<Op> {
        Timed {
            op,
            invoke,
            complete,
            who: String::new(),
        }
    }

    #[test]
    fn concurrent_read_may_see_either_value() {
        let h = vec![
            t(Op::Write(1), 0, Some(10)),
            t(Op::Read(0), 1, Some(5)),
            t(Op::Read(1), 2, Some(6)),
        ];
        assert_eq!(check(&Register, &h, 1_000), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_a_completed_write_is_a_violation() {
        let h = vec![t(Op::Write(1), 0, Some(10)), t(Op::Read(0), 11, Some(12))];
        assert!(matches!(
            check(&Register, &h, 1_000),
            Verdict::Violation { stuck: 1, .. }
        ));
    }

    #[test]
    fn reads_may_not_go_back_in_time() {
        // Two sequential reads during one long write: 1 then 0 is impossible.
        let h = vec![
            t(Op::Write(1), 0, Some(100)),
            t(Op::Read(1), 10, Some(20)),
            t(Op::Read(0), 30, Some(40)),
        ];
        assert!(matches!(
            check(&Register, &h, 1_000),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn an_unknown_write_may_or_may_not_take_effect() {
        let seen = vec![t(Op::Write(1), 0, None), t(Op::Read(1), 50, Some(60))];
        assert_eq!(check(&Register, &seen, 1_000), Verdict::Linearizable);
        let unseen = vec![t(Op::Write(1), 0, None), t(Op::Read(0), 50, Some(60))];
        assert_eq!(check(&Register, &unseen, 1_000), Verdict::Linearizable);
        // ... but not take effect and then be undone.
        let flicker = vec![
            t(Op::Write(1), 0, None),
            t(Op::Read(1), 50, Some(60)),
            t(Op::Read(0), 70, Some(80)),
        ];
        assert!(matches!(
            check(&Register, &flicker, 1_000),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn a_lost_acknowledged_write_is_a_violation() {
        let h = vec![
            t(Op::Write(1), 0, Some(10)),
            t(Op::Cas(0, 2, true), 20, Some(30)),
        ];
        assert!(matches!(
            check(&Register, &h, 1_000),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn the_budget_is_reported_not_passed() {
        let h: Vec<Timed<Op>> = (0..30).map(|i| t(Op::Write(i), 0, None)).collect();
        let mut h = h;
        h.push(t(Op::Read(99), 10, Some(20)));
        assert!(matches!(
            check(&Register, &h, 50),
            Verdict::Inconclusive { .. }
        ));
    }

    /// A soak-sized history (20,000 operations, six at a time, some with unknown outcomes)
    /// is checked in a few times its length in steps, not exponentially many.
    #[test]
    fn long_histories_are_checked_in_near_linear_steps() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut value = 0u8;
        let mut h = Vec::new();
        for i in 0..20_000u64 {
            let point = 100 * (i + 1);
            let op = if rng.random_bool(0.5) {
                Op::Read(value)
            } else {
                value = rng.random_range(0..8);
                Op::Write(value)
            };
            let complete = if rng.random_bool(0.01) {
                None
            } else {
                Some(point + rng.random_range(0..300))
            };
            h.push(t(op, point - rng.random_range(0..300).min(point), complete));
        }
        let budget = 10 * h.len() as u64;
        assert_eq!(check(&Register, &h, budget), Verdict::Linearizable);
    }

    /// Random small histories: WGL agrees with brute force, and histories generated from a real
    /// sequential execution are always accepted.
    #[test]
    fn agrees_with_brute_force_on_random_histories() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut linearizable, mut not) = (0, 0);
        for _ in 0..3_000 {
            let n = rng.random_range(1..=7);
            // Run operations sequentially at linearization points 10, 20, ...; each gets an
            // interval around its point, so the true order is one valid linearization.
            let mut value = 0u8;
            let mut h = Vec::new();
            for i in 0..n {
                let point = 10 * (i as u64 + 1);
                let op = match rng.random_range(0..3) {
                    0 => Op::Read(value),
                    1 => {
                        value = rng.random_range(0..3);
                        Op::Write(value)
                    }
                    _ => {
                        let from = rng.random_range(0..3);
                        let to = rng.random_range(0..3);
                        let ok = from == value;
                        if ok {
                            value = to;
                        }
                        Op::Cas(from, to, ok)
                    }
                };
                let invoke = point - rng.random_range(0..25).min(point);
                let complete = if rng.random_bool(0.15) {
                    None
                } else {
                    Some(point + rng.random_range(0..25))
                };
                h.push(t(op, invoke, complete));
            }
            assert_eq!(
                check(&Register, &h, 1_000_000),
                Verdict::Linearizable,
                "{h:?}"
            );
            // Perturb one result: both checkers must agree.
            let i = rng.random_range(0..h.len());
            h[i].op = match h[i].op {
                Op::Read(_) => Op::Read(rng.random_range(0..3)),
                Op::Write(_) => Op::Write(rng.random_range(0..3)),
                Op::Cas(f, to, ok) => Op::Cas(f, to, !ok),
            };
            let brute = check_brute_force(&Register, &h);
            let wgl = check(&Register, &h, 1_000_000);
            assert_eq!(brute, wgl == Verdict::Linearizable, "{h:?}: {wgl:?}");
            if brute {
                linearizable += 1;
            } else {
                not += 1;
            }
        }
        assert!(
            linearizable > 100 && not > 100,
            "{linearizable} / {not}: both kinds exercised"
        );
    }
}
