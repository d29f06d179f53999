//! [`Principal`]: who a connection (or a gateway request) acts for, with compiled
//! permissions, and [`Decisions`], a connection's cache of what it has been allowed.
//!
//! Semantics (README, "Security"):
//! - `publish` globs govern `topic publish`, the `broker` feature's `publish`, and
//!   `eventbus message` (on the topic name `eventbus`).
//! - `subscribe` globs govern `topic subscribe`, group joins and commits, fetches (the
//!   `broker` feature's `fetch`), which topics `topic list` shows, and `eventbus
//!   subscribe` (on the topic name `eventbus`).
//! - `call` globs govern `rpc call` by its `feature` label, and `chat` frames as the
//!   feature `chat:<adapter>`.
//! - `serve` globs govern `rpc register` and `rpc unregister` of a named service
//!   (`svc:<name>`): offering a service is not calling it, and a caller that could
//!   register would take calls meant for the real service.
//! - `admin` governs topic create (and delete), and the `broker` feature's methods
//!   other than `ping`, `publish` and `fetch` (`tree`, `drivers`, and any added later,
//!   such as a reload). It does not grant topic or call permissions by itself; an admin
//!   may register any chat adapter.
//! - The anonymous principal (no `[auth]`, or `allow_anonymous`) may do everything.

use std::collections::HashMap;

use serde::Serialize;

use super::glob::{FeatureGlob, TopicGlob};

/// The name the anonymous principal carries (in logs and spans).
pub const ANONYMOUS: &str = "anonymous";

/// A user, with permissions compiled from its `[[auth.user]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub publish: Vec<TopicGlob>,
    pub subscribe: Vec<TopicGlob>,
    pub call: Vec<FeatureGlob>,
    pub serve: Vec<FeatureGlob>,
    pub admin: bool,
    /// Everything allowed; no checks made.
    anonymous: bool,
}

/// What `auth ok` carries: a principal's permissions as written in the config.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PermissionsView<'a> {
    pub user: &'a str,
    pub publish: Vec<&'a str>,
    pub subscribe: Vec<&'a str>,
    pub call: Vec<&'a str>,
    pub serve: Vec<&'a str>,
    pub admin: bool,
}

impl Principal {
    pub fn new(
        name: impl Into<String>,
        publish: Vec<TopicGlob>,
        subscribe: Vec<TopicGlob>,
        call: Vec<FeatureGlob>,
        admin: bool,
    ) -> Principal {
        Principal {
            name: name.into(),
            publish,
            subscribe,
            call,
            serve: Vec::new(),
            admin,
            anonymous: false,
        }
    }

    /// With the feature globs of the services it may register.
    pub fn with_serve(mut self, serve: Vec<FeatureGlob>) -> Principal {
        self.serve = serve;
        self
    }

    /// The principal of an unsecured port: every operation allowed.
    pub fn anonymous() -> Principal {
        Principal {
            name: ANONYMOUS.into(),
            publish: Vec::new(),
            subscribe: Vec::new(),
            call: Vec::new(),
            serve: Vec::new(),
            admin: true,
            anonymous: true,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        self.anonymous || self.publish.iter().any(|g| g.matches(topic))
    }

    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.anonymous || self.subscribe.iter().any(|g| g.matches(topic))
    }

    pub fn may_call(&self, feature: &str) -> bool {
        self.anonymous || self.call.iter().any(|g| g.matches(feature))
    }

    pub fn may_serve(&self, feature: &str) -> bool {
        self.anonymous || self.serve.iter().any(|g| g.matches(feature))
    }

    pub fn is_admin(&self) -> bool {
        self.anonymous || self.admin
    }

    pub fn view(&self) -> PermissionsView<'_> {
        fn names(v: &[TopicGlob]) -> Vec<&str> {
            v.iter().map(TopicGlob::as_str).collect()
        }
        PermissionsView {
            user: &self.name,
            publish: if self.anonymous {
                vec![">"]
            } else {
                names(&self.publish)
            },
            subscribe: if self.anonymous {
                vec![">"]
            } else {
                names(&self.subscribe)
            },
            call: if self.anonymous {
                vec![">"]
            } else {
                self.call.iter().map(FeatureGlob::as_str).collect()
            },
            serve: if self.anonymous {
                vec![">"]
            } else {
                self.serve.iter().map(FeatureGlob::as_str).collect()
            },
            admin: self.is_admin(),
        }
    }

    /// The `auth ok` payload.
    pub fn permissions_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.view()).unwrap_or_default()
    }
}

/// The kinds of operation a cached decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Publish,
    Subscribe,
    Call,
    Serve,
}

/// A connection's remembered decisions, so each topic or feature is matched against
/// the globs once, not once per message. Bounded: past `MAX_CACHED` names of one kind
/// the cache starts over (a client cycling through names pays the glob match again).
#[derive(Debug, Default)]
pub struct Decisions {
    publish: HashMap<String, bool>,
    subscribe: HashMap<String, bool>,
    call: HashMap<String, bool>,
    serve: HashMap<String, bool>,
}

const MAX_CACHED: usize = 4096;

impl Decisions {
    /// Whether `p` may do `kind` on `name`, from the cache when it was asked before.
    pub fn allows(&mut self, p: &Principal, kind: Kind, name: &str) -> bool {
        if p.is_anonymous() {
            return true;
        }
        let map = match kind {
            Kind::Publish => &mut self.publish,
            Kind::Subscribe => &mut self.subscribe,
            Kind::Call => &mut self.call,
            Kind::Serve => &mut self.serve,
        };
        if let Some(&d) = map.get(name) {
            return d;
        }
        let d = match kind {
            Kind::Publish => p.may_publish(name),
            Kind::Subscribe => p.may_subscribe(name),
            Kind::Call => p.may_call(name),
            Kind::Serve => p.may_serve(name),
        };
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(name.to_string(), d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Principal {
        Principal::new(
            "ops",
            vec![TopicGlob::parse("orders").unwrap()],
            vec![TopicGlob::parse("events.>").unwrap()],
            vec![FeatureGlob::parse("svc:*").unwrap()],
            false,
        )
    }

    #[test]
    fn checks_follow_the_globs() {
        let p = user();
        assert!(p.may_publish("orders"));
        assert!(!p.may_publish("events.a"));
        assert!(p.may_subscribe("events.a"));
        assert!(!p.may_subscribe("orders"));
        assert!(p.may_call("svc:x"));
        assert!(!p.may_call("driver:x"));
        assert!(!p.may_serve("svc:x"));
        let server = p
            .clone()
            .with_serve(vec![FeatureGlob::parse("svc:upper").unwrap()]);
        assert!(server.may_serve("svc:upper") && !server.may_serve("svc:other"));
        assert!(!p.is_admin());
    }

    #[test]
    fn anonymous_may_do_everything() {
        let a = Principal::anonymous();
        assert!(a.may_publish("x") && a.may_subscribe("y") && a.may_call("driver:z"));
        assert!(a.is_admin());
    }

    #[test]
    fn decisions_are_cached_and_bounded() {
        let p = user();
        let mut d = Decisions::default();
        assert!(d.allows(&p, Kind::Publish, "orders"));
        assert!(!d.allows(&p, Kind::Publish, "other"));
        assert_eq!(d.publish.len(), 2);
        for i in 0..MAX_CACHED + 10 {
            d.allows(&p, Kind::Subscribe, &format!("t{i}"));
        }
        assert!(d.subscribe.len() <= MAX_CACHED);
    }

    #[test]
    fn permissions_json_lists_the_patterns() {
        let v: serde_json::Value = serde_json::from_slice(&user().permissions_json()).unwrap();
        assert_eq!(v["user"], "ops");
        assert_eq!(v["publish"][0], "orders");
        assert_eq!(v["call"][0], "svc:*");
        assert_eq!(v["admin"], false);
    }
}
