//! The follow graph, and for each user the followers who are online right now.
//!
//! User ids are interned to dense indices on first use. A status update fans out to
//! the online followers only, so its cost is the number of notifications it makes,
//! not the size of the follower set; that list is kept up to date on follow, unfollow,
//! connect and disconnect.

use rustc_hash::{FxHashMap, FxHashSet};

pub type User = u32;

#[derive(Debug, Default)]
pub struct Graph {
    index: FxHashMap<u64, User>,
    ids: Vec<u64>,
    followers: Vec<FxHashSet<User>>,
    online_followers: Vec<Vec<User>>,
    /// Open sessions per user.
    online: Vec<u32>,
    max_users: usize,
}

/// The user table is full (`maze.max_users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyUsers;

impl Graph {
    pub fn new(max_users: usize) -> Self {
        Graph {
            max_users,
            ..Default::default()
        }
    }

    /// The index of `id`, interning it if new.
    pub fn intern(&mut self, id: u64) -> Result<User, TooManyUsers> {
        if let Some(&u) = self.index.get(&id) {
            return Ok(u);
        }
        if self.ids.len() >= self.max_users {
            return Err(TooManyUsers);
        }
        let u = self.ids.len() as User;
        self.index.insert(id, u);
        self.ids.push(id);
        self.followers.push(FxHashSet::default());
        self.online_followers.push(Vec::new());
        self.online.push(0);
        Ok(u)
    }

    /// The index of `id` if it has been seen.
    pub fn lookup(&self, id: u64) -> Option<User> {
        self.index.get(&id).copied()
    }

    pub fn users(&self) -> usize {
        self.ids.len()
    }

    pub fn edges(&self) -> usize {
        self.followers.iter().map(FxHashSet::len).sum()
    }

    pub fn is_online(&self, u: User) -> bool {
        self.online[u as usize] > 0
    }

    pub fn follow(&mut self, from: User, to: User) {
        if self.followers[to as usize].insert(from) && self.is_online(from) {
            self.online_followers[to as usize].push(from);
        }
    }

    pub fn unfollow(&mut self, from: User, to: User) {
        if self.followers[to as usize].remove(&from) && self.is_online(from) {
            let list = &mut self.online_followers[to as usize];
            if let Some(i) = list.iter().position(|&f| f == from) {
                list.swap_remove(i);
            }
        }
    }

    /// Followers of `u` with an open session.
    pub fn online_followers(&self, u: User) -> &[User] {
        &self.online_followers[u as usize]
    }

    /// A session for `u` opened. The first one puts `u` in the online-follower lists
    /// of everyone it follows (one pass over the users, at connect time only).
    pub fn connect(&mut self, u: User) {
        self.online[u as usize] += 1;
        if self.online[u as usize] == 1 {
            for (to, set) in self.followers.iter().enumerate() {
                if set.contains(&u) {
                    self.online_followers[to].push(u);
                }
            }
        }
    }

    /// A session for `u` closed; the last one takes `u` out of those lists.
    pub fn disconnect(&mut self, u: User) {
        let n = &mut self.online[u as usize];
        *n = n.saturating_sub(1);
        if *n == 0 {
            for (to, set) in self.followers.iter().enumerate() {
                if set.contains(&u) {
                    let list = &mut self.online_followers[to];
                    if let Some(i) = list.iter().position(|&f| f == u) {
                        list.swap_remove(i);
                    }
                }
            }
        }
    }

    /// Forgets every follow, keeping users and who is online.
    pub fn clear_follows(&mut self) {
        self.followers.iter_mut().for_each(FxHashSet::clear);
        self.online_followers.iter_mut().for_each(Vec::clear);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_followers_track_every_change() {
        let mut g = Graph::new(100);
        let [a, b, c] = [
            g.intern(10).unwrap(),
            g.intern(20).unwrap(),
            g.intern(30).unwrap(),
        ];
        g.follow(a, c);
        g.connect(b);
        g.follow(b, c);
        assert_eq!(g.online_followers(c), &[b]);
        g.connect(a);
        let mut f = g.online_followers(c).to_vec();
        f.sort();
        assert_eq!(
            f,
            vec![a, b],
            "a followed while offline and counts once online"
        );
        g.unfollow(b, c);
        assert_eq!(g.online_followers(c), &[a]);
        g.connect(a);
        g.disconnect(a);
        assert_eq!(
            g.online_followers(c),
            &[a],
            "a second session keeps a online"
        );
        g.disconnect(a);
        assert!(g.online_followers(c).is_empty());
        assert_eq!(g.edges(), 1);
        g.clear_follows();
        assert_eq!(g.edges(), 0);
    }

    #[test]
    fn the_user_table_is_bounded() {
        let mut g = Graph::new(2);
        g.intern(1).unwrap();
        g.intern(2).unwrap();
        assert_eq!(g.intern(1), Ok(0));
        assert_eq!(g.intern(3), Err(TooManyUsers));
        assert_eq!(g.lookup(3), None);
    }
}
