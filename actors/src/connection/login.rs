//! Logins and permissions on a broker-port connection.
//!
//! With `[auth]` (and `allow_anonymous` off) a new connection may send only `command
//! ping` and `auth login` until it has logged in; any other frame is answered `auth
//! error` ("login required") and the connection closes. The credentials are checked on
//! the blocking pool while the connection reads nothing more, so the frames after a
//! login are handled as the user it names. A bad login is answered only after the
//! throttle's delay for the peer's address, and the connection closes.
//!
//! Once logged in, each operation asks [`Connection::may`], which remembers its answer
//! per topic or feature ([`Decisions`]), so a stream of publishes to one topic is
//! matched against the globs once.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use actix::prelude::*;
use bytes::Bytes;
use switchyard_codecs::{Envelope, Frame};
use tracing::{debug, info, warn};

use super::Connection;
use crate::auth::{Decisions, Kind, Principal};

/// The principal of a connection that needs no login.
static ANONYMOUS: LazyLock<Arc<Principal>> = LazyLock::new(|| Arc::new(Principal::anonymous()));

/// The answer to every bad login, whether or not the user exists.
const BAD_CREDENTIALS: &str = "bad credentials";

/// Who a connection acts for, and what it has been allowed so far.
#[derive(Debug, Default)]
pub(crate) struct LoginState {
    /// `None` until a login succeeds (only when a login is required).
    principal: Option<Arc<Principal>>,
    decisions: Decisions,
    /// Credentials are being checked: no further frame is handled until they are.
    pub(super) pending: bool,
}

impl LoginState {
    pub(super) fn new(required: bool) -> LoginState {
        LoginState {
            principal: (!required).then(|| ANONYMOUS.clone()),
            ..LoginState::default()
        }
    }

    pub(super) fn logged_in(&self) -> bool {
        self.principal.is_some()
    }

    /// Everything is allowed: no check needs making.
    pub(super) fn unrestricted(&self) -> bool {
        self.principal.as_ref().is_some_and(|p| p.is_anonymous())
    }
}

type Verdict = Pin<Box<dyn Future<Output = Option<Arc<Principal>>>>>;

fn auth_error(why: &str, id: Option<&Bytes>) -> Envelope {
    let e = Envelope::new("auth", "error").with_label("error", why.to_string());
    match id {
        Some(id) => e.with_label("id", id.clone()),
        None => e,
    }
}

impl Connection {
    /// Lets `frame` through when this connection may send it now; otherwise handles it
    /// here (a ping, a login, or a refusal that closes the connection).
    pub(super) fn gate(&mut self, frame: Frame, ctx: &mut Context<Self>) -> Option<Frame> {
        let env = match frame {
            Frame::Envelope(env) if env.channel == "auth" => {
                self.auth_request(env, ctx);
                return None;
            }
            f if self.login.logged_in() => return Some(f),
            Frame::Envelope(env) if env.is("command", "ping") => return Some(Frame::Envelope(env)),
            Frame::Envelope(env) => Some(env),
            Frame::Maze(_) | Frame::Oversize(_) => None,
        };
        let id = env.as_ref().and_then(|e| e.labels.get("id").cloned());
        self.stats.auth.failure("broker", "login_required");
        if let Some(suppressed) = self.auth_log.allow() {
            info!(peer = %self.peer, suppressed, "frame before login, closing");
        }
        self.send_envelope(&auth_error("login required", id.as_ref()), ctx);
        self.sock.close(ctx, "login required");
        None
    }

    /// Closes the connection if it has not logged in (nor started to) in time.
    pub(super) fn start_login_deadline(&mut self, ctx: &mut Context<Self>) {
        let Some(auth) = self
            .services
            .auth
            .as_ref()
            .filter(|_| !self.login.logged_in())
        else {
            return;
        };
        let t = auth.login_timeout;
        ctx.run_later(t, move |act, ctx| {
            if act.login.logged_in() || act.login.pending || act.sock.closing().is_some() {
                return;
            }
            let _g = act.span.clone().entered();
            act.stats.auth.failure("broker", "login_timeout");
            if let Some(suppressed) = act.auth_log.allow() {
                info!(peer = %act.peer, login_timeout_ms = t.as_millis() as u64, suppressed, "no login in time, closing");
            }
            act.send_envelope(&auth_error("login timeout", None), ctx);
            act.sock.close(ctx, "login timeout");
            act.flush(ctx);
        });
    }

    fn auth_request(&mut self, env: Envelope, ctx: &mut Context<Self>) {
        let id = env.labels.get("id").cloned();
        if &*env.subject != "login" {
            let why = format!("unknown request `auth {}`", env.subject);
            return self.send_envelope(&auth_error(&why, id.as_ref()), ctx);
        }
        if let Some(p) = self.login.principal.as_ref().filter(|p| !p.is_anonymous()) {
            let why = format!("already logged in as {}", p.name);
            return self.send_envelope(&auth_error(&why, id.as_ref()), ctx);
        }
        let Some(auth) = self.services.auth.clone() else {
            // An open broker: any login is the anonymous user, so secured clients work.
            return self.logged_in(ANONYMOUS.clone(), id, ctx);
        };
        let users = auth.users.clone();
        let verdict: Verdict = match (
            env.labels.get_str("token"),
            env.labels.get_str("user"),
            env.labels.get("password"),
        ) {
            (Some(token), _, _) => Box::pin(users.verify_token_blocking(token.to_string())),
            (None, Some(user), Some(pw)) => Box::pin(users.verify_password_blocking(
                user.to_string(),
                String::from_utf8_lossy(pw).into_owned(),
            )),
            _ => {
                self.stats.auth.failure("broker", "bad_request");
                let why = "auth login needs labels user and password, or token";
                self.send_envelope(&auth_error(why, id.as_ref()), ctx);
                return self.sock.close(ctx, "bad login request");
            }
        };
        self.login.pending = true;
        self.inflight += 1;
        ctx.spawn(verdict.into_actor(self).map(move |found, act, ctx| {
            let _g = act.span.clone().entered();
            match found {
                Some(p) => act.logged_in(p, id, ctx),
                None => {
                    // The answer waits, so guessing costs time; the check itself took
                    // as long for an unknown user as for a wrong password.
                    let delay = auth.throttle.failure(act.peer.ip().to_canonical());
                    ctx.run_later(delay, move |act, ctx| act.bad_login(id, ctx));
                }
            }
        }));
    }

    fn logged_in(&mut self, p: Arc<Principal>, id: Option<Bytes>, ctx: &mut Context<Self>) {
        if let Some(auth) = &self.services.auth {
            auth.throttle.success(self.peer.ip().to_canonical());
        }
        self.span.record("user", p.name.as_str());
        info!(peer = %self.peer, user = %p.name, "login");
        let mut ok = Envelope::new("auth", "ok").with_label("user", p.name.clone());
        if let Some(id) = id {
            ok = ok.with_label("id", id);
        }
        self.send_envelope(&ok.with_payload(p.permissions_json()), ctx);
        self.login.principal = Some(p);
        self.login.decisions = Decisions::default();
        self.resume_after_login(ctx);
    }

    /// A mutual-TLS client whose certificate names a configured user is that user:
    /// no login frame is needed (nor answered). A name that is no user changes
    /// nothing: the peer logs in as any other.
    pub(super) fn login_by_certificate(&mut self, name: &str) {
        if self.login.logged_in() && !self.login.unrestricted() {
            return;
        }
        let Some(p) = self
            .services
            .auth
            .as_ref()
            .and_then(|a| a.users.named(name))
        else {
            return;
        };
        self.span.record("user", p.name.as_str());
        info!(peer = %self.peer, user = %p.name, "login by client certificate");
        self.login.principal = Some(p);
        self.login.decisions = Decisions::default();
    }

    fn bad_login(&mut self, id: Option<Bytes>, ctx: &mut Context<Self>) {
        let _g = self.span.clone().entered();
        self.stats.auth.failure("broker", "bad_credentials");
        if let Some(suppressed) = self.auth_log.allow() {
            warn!(peer = %self.peer, suppressed, "bad login, closing");
        }
        self.send_envelope(&auth_error(BAD_CREDENTIALS, id.as_ref()), ctx);
        self.sock.close(ctx, "bad login");
        self.resume_after_login(ctx);
    }

    /// Goes on with the frames that waited for the login's outcome.
    fn resume_after_login(&mut self, ctx: &mut Context<Self>) {
        if !self.login.pending {
            // Answered within the turn that read the login: that turn goes on.
            return;
        }
        self.login.pending = false;
        self.inflight -= 1;
        self.process(ctx);
        self.after_input(ctx);
    }

    /// Whether this connection may do `kind` on `name` (a topic or a feature); cached.
    pub(super) fn may(&mut self, kind: Kind, name: &str) -> bool {
        match &self.login.principal {
            Some(p) => self.login.decisions.allows(p, kind, name),
            None => false,
        }
    }

    /// Admin operations (topic create, the `broker` feature's tree and drivers).
    pub(super) fn may_admin(&self) -> bool {
        self.login.principal.as_ref().is_some_and(|p| p.is_admin())
    }

    /// Counts and logs a refused operation, and sends `answer` (which names the
    /// operation and the resource, with the request's id).
    pub(super) fn refuse(&mut self, op: &'static str, answer: &Envelope, ctx: &mut Context<Self>) {
        self.stats.auth.denied(op);
        debug!(peer = %self.peer, op, "permission denied");
        self.send_envelope(answer, ctx);
    }
}

/// The reason text of a refusal.
pub(crate) fn denied(op: &str, what: &str) -> String {
    format!("permission denied: {op} {what}")
}
