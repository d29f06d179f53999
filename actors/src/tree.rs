//! The actor-tree registry: every actor registers its kind, name and parent when it
//! starts and leaves when it stops, so the live tree can be printed and served.
//!
//! Registration returns a [`TreeEntry`]; the actor keeps it in a field, so the entry
//! leaves the tree when the actor is dropped, whether it stopped or panicked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

/// An actor's id in the tree.
pub type ActorId = u64;

#[derive(Debug)]
struct Node {
    kind: &'static str,
    name: String,
    parent: Option<ActorId>,
    path: String,
    detail: String,
    started: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    next: ActorId,
    nodes: BTreeMap<ActorId, Node>,
}

/// The shared registry. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct ActorTree {
    inner: Arc<Mutex<Inner>>,
}

/// One actor's place in the tree; dropping it removes the actor.
#[derive(Debug)]
pub struct TreeEntry {
    tree: ActorTree,
    id: ActorId,
    path: String,
}

/// A node and its children, for JSON and for tests.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TreeNode {
    pub id: ActorId,
    pub kind: String,
    pub name: String,
    pub path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub uptime_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<TreeNode>,
}

impl ActorTree {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves the map consistent (each operation
        // is one insert or remove), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an actor under `parent` and logs its path at debug level.
    pub fn register(
        &self,
        parent: Option<ActorId>,
        kind: &'static str,
        name: impl Into<String>,
    ) -> TreeEntry {
        let name = name.into();
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        let segment = if parent.is_none() && kind == "supervisor" {
            name.clone()
        } else {
            format!("{kind}:{name}")
        };
        let path = match parent.and_then(|p| inner.nodes.get(&p)) {
            Some(p) => format!("{}/{segment}", p.path),
            None => segment,
        };
        inner.nodes.insert(
            id,
            Node {
                kind,
                name,
                parent,
                path: path.clone(),
                detail: String::new(),
                started: Instant::now(),
            },
        );
        drop(inner);
        tracing::debug!(path = %path, "actor started");
        TreeEntry {
            tree: self.clone(),
            id,
            path,
        }
    }

    fn set_detail(&self, id: ActorId, detail: String) {
        if let Some(node) = self.lock().nodes.get_mut(&id) {
            node.detail = detail;
        }
    }

    /// How many actors are registered.
    pub fn len(&self) -> usize {
        self.lock().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Paths of every registered actor whose kind is `kind`.
    pub fn paths_of(&self, kind: &str) -> Vec<String> {
        self.lock()
            .nodes
            .values()
            .filter(|n| n.kind == kind)
            .map(|n| n.path.clone())
            .collect()
    }

    /// The forest as nested nodes. An actor whose parent has already left is shown at
    /// the top level rather than hidden.
    pub fn snapshot(&self) -> Vec<TreeNode> {
        let inner = self.lock();
        let mut children: BTreeMap<Option<ActorId>, Vec<ActorId>> = BTreeMap::new();
        for (&id, node) in &inner.nodes {
            let parent = node.parent.filter(|p| inner.nodes.contains_key(p));
            children.entry(parent).or_default().push(id);
        }
        fn build(
            inner: &Inner,
            children: &BTreeMap<Option<ActorId>, Vec<ActorId>>,
            id: ActorId,
        ) -> Option<TreeNode> {
            let node = inner.nodes.get(&id)?;
            let kids = children
                .get(&Some(id))
                .map(Vec::as_slice)
                .unwrap_or_default();
            Some(TreeNode {
                id,
                kind: node.kind.to_string(),
                name: node.name.clone(),
                path: node.path.clone(),
                detail: node.detail.clone(),
                uptime_ms: node.started.elapsed().as_millis() as u64,
                children: kids
                    .iter()
                    .filter_map(|&k| build(inner, children, k))
                    .collect(),
            })
        }
        let roots = children.get(&None).map(Vec::as_slice).unwrap_or_default();
        roots
            .iter()
            .filter_map(|&r| build(&inner, &children, r))
            .collect()
    }

    /// The tree as text, one actor a line, for the log.
    pub fn render(&self) -> String {
        fn walk(out: &mut String, node: &TreeNode, prefix: &str, last: bool, top: bool) {
            let (branch, next) = match (top, last) {
                (true, _) => ("", String::new()),
                (false, true) => ("└── ", format!("{prefix}    ")),
                (false, false) => ("├── ", format!("{prefix}│   ")),
            };
            let label = if top && node.kind == "supervisor" {
                node.name.clone()
            } else {
                format!("{}:{}", node.kind, node.name)
            };
            let _ = write!(out, "{prefix}{branch}{label}");
            if !node.detail.is_empty() {
                let _ = write!(out, " [{}]", node.detail);
            }
            out.push('\n');
            for (i, child) in node.children.iter().enumerate() {
                walk(out, child, &next, i + 1 == node.children.len(), false);
            }
        }
        let forest = self.snapshot();
        let mut out = String::new();
        for root in &forest {
            walk(&mut out, root, "", true, true);
        }
        out
    }
}

impl TreeEntry {
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// `root/listener:broker/connection:127.0.0.1:50012`
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tree(&self) -> &ActorTree {
        &self.tree
    }

    /// Registers a child of this actor.
    pub fn child(&self, kind: &'static str, name: impl Into<String>) -> TreeEntry {
        self.tree.register(Some(self.id), kind, name)
    }

    /// A short status shown next to the actor in the tree.
    pub fn set_detail(&self, detail: impl Into<String>) {
        self.tree.set_detail(self.id, detail.into());
    }
}

impl Drop for TreeEntry {
    fn drop(&mut self) {
        self.tree.lock().nodes.remove(&self.id);
        tracing::debug!(path = %self.path, "actor stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_and_leave() {
        let tree = ActorTree::new();
        let root = tree.register(None, "supervisor", "root");
        let l = root.child("listener", "broker");
        let c1 = l.child("connection", "127.0.0.1:50012");
        let _c2 = l.child("connection", "127.0.0.1:50013");
        assert_eq!(c1.path(), "root/listener:broker/connection:127.0.0.1:50012");
        l.set_detail("127.0.0.1:7400");
        let text = tree.render();
        assert_eq!(
            text,
            "root\n└── listener:broker [127.0.0.1:7400]\n    ├── connection:127.0.0.1:50012\n    └── connection:127.0.0.1:50013\n"
        );
        drop(c1);
        assert_eq!(tree.len(), 3);
        assert_eq!(
            tree.paths_of("connection"),
            vec!["root/listener:broker/connection:127.0.0.1:50013"]
        );
        drop(l);
        // The orphan is still shown, at the top.
        assert_eq!(tree.snapshot().len(), 2);
    }
}
