//! The maze workload, generated from a seed the way the official harness does, and
//! every client's expected notifications, computed by simulating the follow graph.

use rustc_hash::{FxHashMap, FxHashSet};

/// splitmix64: small, fast and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// One event, compactly: the type letter and two user ids (0 when unused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ev {
    pub kind: u8,
    pub from: u32,
    pub to: u32,
}

impl Ev {
    /// Appends `seq|T[|from[|to]]`.
    pub fn write(&self, seq: u64, out: &mut Vec<u8>) {
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(seq).as_bytes());
        out.push(b'|');
        out.push(self.kind);
        if self.kind != b'B' {
            out.push(b'|');
            out.extend_from_slice(b.format(self.from).as_bytes());
        }
        if matches!(self.kind, b'F' | b'U' | b'P') {
            out.push(b'|');
            out.extend_from_slice(b.format(self.to).as_bytes());
        }
    }
}

/// The whole run: who connects, what is sent, and what each client must receive.
#[derive(Debug)]
pub struct Workload {
    /// `events[seq - 1]`.
    pub events: Vec<Ev>,
    /// User id of each client.
    pub clients: Vec<u32>,
    /// Batch sizes, in order; each batch is shuffled when sent.
    pub batches: Vec<u32>,
    /// Each client's expected sequence numbers, as LEB128 deltas.
    pub expected: Vec<Vec<u8>>,
    pub expected_counts: Vec<u64>,
    pub mix: Mix,
}

/// How many events of each type were generated.
#[derive(Debug, Default, Clone, Copy)]
pub struct Mix {
    pub broadcast: u64,
    pub follow: u64,
    pub unfollow: u64,
    pub private: u64,
    pub status: u64,
}

/// The official mix, per million: broadcast 0.01 %, follow, unfollow and private
/// 15 % each, status updates the rest.
const BROADCAST: u64 = 100;
const FOLLOW: u64 = 150_000;

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads back what [`push_varint`] wrote, as absolute sequence numbers.
#[derive(Debug)]
pub struct Expected<'a> {
    bytes: &'a [u8],
    pos: usize,
    last: u64,
}

impl<'a> Expected<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Expected {
            bytes,
            pos: 0,
            last: 0,
        }
    }
}

impl Iterator for Expected<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        self.last += v;
        Some(self.last)
    }
}

impl Workload {
    pub fn generate(
        seed: u64,
        total: u64,
        concurrency: usize,
        users: u32,
        max_batch: u32,
    ) -> Workload {
        let mut rng = Rng::new(seed);
        // Distinct client ids from 1..=users.
        let mut chosen = FxHashSet::default();
        let mut clients = Vec::with_capacity(concurrency);
        while clients.len() < concurrency.min(users as usize) {
            let id = rng.below(u64::from(users)) as u32 + 1;
            if chosen.insert(id) {
                clients.push(id);
            }
        }
        let mut mix = Mix::default();
        let user = |rng: &mut Rng| rng.below(u64::from(users)) as u32 + 1;
        let mut events = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let r = rng.below(1_000_000);
            let ev = if r < BROADCAST {
                mix.broadcast += 1;
                Ev {
                    kind: b'B',
                    from: 0,
                    to: 0,
                }
            } else if r < BROADCAST + FOLLOW {
                mix.follow += 1;
                Ev {
                    kind: b'F',
                    from: user(&mut rng),
                    to: user(&mut rng),
                }
            } else if r < BROADCAST + 2 * FOLLOW {
                mix.unfollow += 1;
                Ev {
                    kind: b'U',
                    from: user(&mut rng),
                    to: user(&mut rng),
                }
            } else if r < BROADCAST + 3 * FOLLOW {
                mix.private += 1;
                Ev {
                    kind: b'P',
                    from: user(&mut rng),
                    to: user(&mut rng),
                }
            } else {
                mix.status += 1;
                Ev {
                    kind: b'S',
                    from: user(&mut rng),
                    to: 0,
                }
            };
            events.push(ev);
        }
        let mut batches = Vec::new();
        let mut left = total;
        while left > 0 {
            let b = (rng.below(u64::from(max_batch.max(1))) + 1).min(left);
            batches.push(b as u32);
            left -= b;
        }
        let (expected, expected_counts) = expect(&events, &clients);
        Workload {
            events,
            clients,
            batches,
            expected,
            expected_counts,
            mix,
        }
    }

    pub fn total_expected(&self) -> u64 {
        self.expected_counts.iter().sum()
    }
}

/// Simulates the follow graph over the events in sequence order.
fn expect(events: &[Ev], clients: &[u32]) -> (Vec<Vec<u8>>, Vec<u64>) {
    let client_of: FxHashMap<u32, usize> =
        clients.iter().enumerate().map(|(i, &u)| (u, i)).collect();
    let mut follows: FxHashSet<u64> = FxHashSet::default();
    // For each user, the clients that follow it.
    let mut client_followers: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
    let mut out = vec![Vec::new(); clients.len()];
    let mut counts = vec![0u64; clients.len()];
    let mut last = vec![0u64; clients.len()];
    let mut push = |c: usize, seq: u64, out: &mut Vec<Vec<u8>>| {
        push_varint(&mut out[c], seq - last[c]);
        last[c] = seq;
        counts[c] += 1;
    };
    for (i, ev) in events.iter().enumerate() {
        let seq = i as u64 + 1;
        let edge = (u64::from(ev.from) << 32) | u64::from(ev.to);
        match ev.kind {
            b'F' => {
                if follows.insert(edge) {
                    if let Some(&c) = client_of.get(&ev.from) {
                        client_followers.entry(ev.to).or_default().push(c);
                    }
                }
                if let Some(&c) = client_of.get(&ev.to) {
                    push(c, seq, &mut out);
                }
            }
            b'U' => {
                if follows.remove(&edge) {
                    if let Some(&c) = client_of.get(&ev.from) {
                        if let Some(list) = client_followers.get_mut(&ev.to) {
                            list.retain(|&x| x != c);
                        }
                    }
                }
            }
            b'B' => (0..clients.len()).for_each(|c| push(c, seq, &mut out)),
            b'P' => {
                if let Some(&c) = client_of.get(&ev.to) {
                    push(c, seq, &mut out);
                }
            }
            _ => {
                if let Some(list) = client_followers.get(&ev.from) {
                    // Sequence order per client holds whatever the list order.
                    for &c in list {
                        push(c, seq, &mut out);
                    }
                }
            }
        }
    }
    (out, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_the_official_mix() {
        let a = Workload::generate(666, 200_000, 10, 100, 100);
        let b = Workload::generate(666, 200_000, 10, 100, 100);
        assert_eq!(a.events, b.events);
        assert_eq!(a.batches, b.batches);
        assert_eq!(a.expected, b.expected);
        assert_eq!(
            a.batches.iter().map(|&b| u64::from(b)).sum::<u64>(),
            200_000
        );
        let pct = |n: u64| n as f64 / 2_000.0;
        assert!((pct(a.mix.status) - 55.0).abs() < 0.5);
        for n in [a.mix.follow, a.mix.unfollow, a.mix.private] {
            assert!((pct(n) - 15.0).abs() < 0.5);
        }
        let mut seen = FxHashSet::default();
        assert!(a
            .clients
            .iter()
            .all(|c| (1..=100).contains(c) && seen.insert(*c)));
    }

    #[test]
    fn expected_follows_the_rules() {
        let ev = |kind: u8, from, to| Ev { kind, from, to };
        // Client users 1 and 2.
        let events = [
            ev(b'S', 3, 0), // 1: nobody follows 3
            ev(b'F', 1, 3), // 2: 1 follows 3; 3 is not a client
            ev(b'S', 3, 0), // 3: to 1
            ev(b'F', 3, 2), // 4: to 2
            ev(b'P', 1, 2), // 5: to 2
            ev(b'U', 1, 3), // 6: nobody
            ev(b'S', 3, 0), // 7: nobody now
            ev(b'B', 0, 0), // 8: everyone
        ];
        let (exp, counts) = expect(&events, &[1, 2]);
        assert_eq!(Expected::new(&exp[0]).collect::<Vec<_>>(), vec![3, 8]);
        assert_eq!(Expected::new(&exp[1]).collect::<Vec<_>>(), vec![4, 5, 8]);
        assert_eq!(counts, vec![2, 3]);
        let mut line = Vec::new();
        events[1].write(2, &mut line);
        assert_eq!(line, b"2|F|1|3");
    }
}
