//! Plugin manifests and who owns which command. A manifest is validated whole (names
//! are single words, patterns compile anchored); a bad one skips that plugin and is
//! reported. A command name belongs to one plugin: the first in config order.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A command as a plugin's `manifest` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandDecl {
    pub name: String,
    /// Regexes with named groups, matched anchored against the rest of the line, in order.
    #[serde(default)]
    pub patterns: Vec<String>,
    #[serde(default)]
    pub usage: String,
    #[serde(default)]
    pub help: String,
    #[serde(default)]
    pub admin: bool,
}

/// What a plugin's `manifest` RPC returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    pub commands: Vec<CommandDecl>,
}

/// A registered command.
#[derive(Debug, Clone)]
pub struct Command {
    pub plugin: String,
    pub decl: CommandDecl,
    pub patterns: Vec<Regex>,
}

/// Every command, by lower-case name.
#[derive(Debug, Default)]
pub struct Registry {
    /// Plugin names in config order; an earlier plugin wins a name.
    order: Vec<String>,
    commands: BTreeMap<String, Command>,
}

/// What registering a manifest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Commands the plugin owns now.
    pub owned: Vec<String>,
    /// Commands refused (or taken from a later plugin), with why.
    pub refused: Vec<(String, String)>,
}

/// Names the engine keeps for itself.
pub const BUILTIN: &[&str] = &["help"];

impl Registry {
    pub fn new(order: Vec<String>) -> Self {
        Registry {
            order,
            commands: BTreeMap::new(),
        }
    }

    fn rank(&self, plugin: &str) -> usize {
        self.order
            .iter()
            .position(|p| p == plugin)
            .unwrap_or(usize::MAX)
    }

    /// Validates and registers `plugin`'s manifest, replacing what it had. Returns the
    /// commands it now owns and the refusals (name, why); an invalid manifest is `Err`
    /// and registers nothing.
    pub fn register(&mut self, plugin: &str, m: &Manifest) -> Result<Registered, String> {
        let mut compiled = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for c in &m.commands {
            let name = c.name.to_lowercase();
            if name.is_empty() || name.chars().any(char::is_whitespace) || name.len() > 64 {
                return Err(format!("command name `{}` is not one word", c.name));
            }
            if !seen.insert(name.clone()) {
                return Err(format!("command `{name}` is declared twice"));
            }
            let mut patterns = Vec::new();
            for p in if c.patterns.is_empty() {
                vec![String::new()]
            } else {
                c.patterns.clone()
            } {
                let re = Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    format!("command `{name}`: pattern `{p}` does not compile: {e}")
                })?;
                patterns.push(re);
            }
            compiled.push((name, c.clone(), patterns));
        }
        self.commands.retain(|_, c| c.plugin != plugin);
        let (mut owned, mut refused) = (Vec::new(), Vec::new());
        let me = self.rank(plugin);
        for (name, decl, patterns) in compiled {
            if BUILTIN.contains(&name.as_str()) {
                refused.push((name, "a built-in command".into()));
                continue;
            }
            if let Some(other) = self.commands.get(&name) {
                if self.rank(&other.plugin) <= me {
                    refused.push((name, format!("already owned by plugin `{}`", other.plugin)));
                    continue;
                }
                refused.push((
                    name.clone(),
                    format!("taken from plugin `{}` (later in config)", other.plugin),
                ));
            }
            owned.push(name.clone());
            self.commands.insert(
                name,
                Command {
                    plugin: plugin.to_string(),
                    decl,
                    patterns,
                },
            );
        }
        Ok(Registered { owned, refused })
    }

    pub fn get(&self, name: &str) -> Option<&Command> {
        self.commands.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Command> {
        self.commands.values()
    }

    /// Drops a plugin's commands (its manifest was bad, or it was removed).
    pub fn remove(&mut self, plugin: &str) {
        self.commands.retain(|_, c| c.plugin != plugin);
    }
}

impl Command {
    /// The named captures of the first pattern that matches `rest` whole, or `None`.
    pub fn matches(&self, rest: &str) -> Option<BTreeMap<String, String>> {
        for re in &self.patterns {
            if let Some(caps) = re.captures(rest) {
                return Some(
                    re.capture_names()
                        .flatten()
                        .filter_map(|n| Some((n.to_string(), caps.name(n)?.as_str().to_string())))
                        .collect(),
                );
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(cmds: &[(&str, &[&str], bool)]) -> Manifest {
        Manifest {
            name: "p".into(),
            version: "1".into(),
            commands: cmds
                .iter()
                .map(|(n, p, admin)| CommandDecl {
                    name: n.to_string(),
                    patterns: p.iter().map(|s| s.to_string()).collect(),
                    usage: format!("!{n}"),
                    help: String::new(),
                    admin: *admin,
                })
                .collect(),
        }
    }

    #[test]
    fn anchored_patterns_with_named_groups() {
        let mut r = Registry::new(vec!["bacon".into()]);
        r.register(
            "bacon",
            &manifest(&[("bacon", &["", r"(?P<nick>\S+)"], false)]),
        )
        .unwrap();
        let c = r.get("bacon").unwrap();
        assert_eq!(c.matches(""), Some(BTreeMap::new()));
        assert_eq!(c.matches("nelsk").unwrap()["nick"], "nelsk");
        assert_eq!(c.matches("nelsk extra"), None);
    }

    #[test]
    fn first_plugin_in_config_order_owns_a_name() {
        let mut r = Registry::new(vec!["a".into(), "b".into()]);
        let m = manifest(&[("x", &[], false)]);
        assert_eq!(r.register("b", &m).unwrap().owned, ["x"]);
        let reg = r.register("a", &m).unwrap();
        assert_eq!(reg.owned, ["x"]);
        assert!(reg.refused[0].1.contains("taken from plugin `b`"));
        let reg = r.register("b", &m).unwrap();
        assert!(reg.owned.is_empty());
        assert!(reg.refused[0].1.contains("already owned by plugin `a`"));
        assert_eq!(r.get("x").unwrap().plugin, "a");
    }

    #[test]
    fn a_bad_manifest_registers_nothing() {
        let mut r = Registry::new(vec!["p".into()]);
        let e = r
            .register(
                "p",
                &manifest(&[("ok", &[], false), ("bad", &["(("], false)]),
            )
            .unwrap_err();
        assert!(e.contains("does not compile"));
        assert!(r.get("ok").is_none());
        assert!(r.register("p", &manifest(&[("a b", &[], false)])).is_err());
        let reg = r.register("p", &manifest(&[("help", &[], false)])).unwrap();
        assert_eq!(reg.refused[0].0, "help");
    }
}
