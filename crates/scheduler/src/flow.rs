//! Min-cost flow by successive shortest paths, for the target placement ([`crate::target`]).
//! Costs are non-negative, so each path is found by Dijkstra over reduced costs (Johnson's
//! potentials), and the flow after every augmentation is the cheapest of its value.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub(crate) struct Edge {
    pub to: usize,
    pub cap: i64,
    pub cost: i64,
}

/// A flow network. Edge `e`'s residual twin is `e ^ 1`.
#[derive(Default)]
pub(crate) struct Network {
    pub edges: Vec<Edge>,
    adj: Vec<Vec<usize>>,
}

impl Network {
    pub fn node(&mut self) -> usize {
        self.adj.push(Vec::new());
        self.adj.len() - 1
    }

    /// Adds `from → to` with capacity `cap` at `cost` per unit; returns the edge's index (none
    /// is added for a capacity of zero or less).
    pub fn edge(&mut self, from: usize, to: usize, cap: i64, cost: i64) -> Option<usize> {
        debug_assert!(cost >= 0, "the network takes non-negative costs only");
        if cap <= 0 {
            return None;
        }
        let e = self.edges.len();
        self.adj[from].push(e);
        self.edges.push(Edge { to, cap, cost });
        self.adj[to].push(e + 1);
        self.edges.push(Edge {
            to: from,
            cap: 0,
            cost: -cost,
        });
        Some(e)
    }

    /// The flow now on edge `e` (what its twin can give back).
    pub fn flow(&self, e: usize) -> i64 {
        self.edges[e ^ 1].cap
    }

    /// Sends up to `want` units from `s` to `t` at least cost; returns (units sent, cost).
    pub fn run(&mut self, s: usize, t: usize, want: i64) -> (i64, i64) {
        let n = self.adj.len();
        let mut potential = vec![0i64; n];
        let (mut sent, mut cost) = (0, 0);
        while sent < want {
            let mut dist = vec![i64::MAX; n];
            let mut via = vec![usize::MAX; n];
            dist[s] = 0;
            let mut heap = BinaryHeap::from([Reverse((0i64, s))]);
            while let Some(Reverse((d, u))) = heap.pop() {
                if d > dist[u] {
                    continue;
                }
                for &e in &self.adj[u] {
                    let Edge { to, cap, cost } = self.edges[e];
                    if cap <= 0 {
                        continue;
                    }
                    let nd = d + cost + potential[u] - potential[to];
                    if nd < dist[to] {
                        dist[to] = nd;
                        via[to] = e;
                        heap.push(Reverse((nd, to)));
                    }
                }
            }
            if dist[t] == i64::MAX {
                break;
            }
            for (p, d) in potential.iter_mut().zip(&dist) {
                if *d != i64::MAX {
                    *p += d;
                }
            }
            let mut push = want - sent;
            let mut v = t;
            while v != s {
                let e = via[v];
                push = push.min(self.edges[e].cap);
                v = self.edges[e ^ 1].to;
            }
            let mut v = t;
            while v != s {
                let e = via[v];
                self.edges[e].cap -= push;
                self.edges[e ^ 1].cap += push;
                cost += push * self.edges[e].cost;
                v = self.edges[e ^ 1].to;
            }
            sent += push;
        }
        (sent, cost)
    }
}

#[cfg(test)]
mod tests {
    use super::Network;

    #[test]
    fn takes_the_cheaper_of_two_routes_then_the_dearer() {
        let mut n = Network::default();
        let (s, a, b, t) = (n.node(), n.node(), n.node(), n.node());
        n.edge(s, a, 1, 0);
        n.edge(s, b, 2, 0);
        let cheap = n.edge(a, t, 1, 1).unwrap();
        let dear = n.edge(b, t, 2, 5).unwrap();
        assert_eq!(n.run(s, t, 2), (2, 6));
        assert_eq!((n.flow(cheap), n.flow(dear)), (1, 1));
    }

    #[test]
    fn reroutes_through_a_residual_edge() {
        // s→a→t and s→b→t, with a→b: the first path takes the cheap cross edge, the second
        // must undo it to send two units.
        let mut n = Network::default();
        let (s, a, b, t) = (n.node(), n.node(), n.node(), n.node());
        n.edge(s, a, 1, 0);
        n.edge(s, b, 1, 0);
        n.edge(a, b, 1, 0);
        n.edge(a, t, 1, 3);
        n.edge(b, t, 1, 1);
        assert_eq!(n.run(s, t, 5), (2, 4));
    }
}
