#!/usr/bin/env perl
# irc-adapter: a switchyard chat adapter for IRC, in Perl with only the modules every
# Debian system has (perl-base). It is a driver: dipper envelopes on stdin/stdout.
#
#   argv: irc-adapter.pl <service>
#   options ([driver.options]): server, port, nick, user, realname, channels = [...],
#                               adapter (the adapter name, default "irc"), max_backoff_s
#
# - registers (NICK/USER), answers PING with PONG, JOINs its channels once welcomed
#   (001), and again after every reconnect; a nick in use (433) gets "_" appended;
# - a PRIVMSG to a channel (or to the bot) becomes `chat ingress` (labels adapter, room,
#   user = nick!user@host, nick); CTCP and NOTICEs are ignored, as bots must;
# - `chat egress` (labels room, optional user) becomes PRIVMSG, one line each;
# - the connection is retried with back-off (1 s, doubling, up to max_backoff_s);
# - RPC `is_trusted` {user, admins}: true when a `nick!user@host` mask in admins matches
#   the user (globs `*` and `?`); a bare nick never matches.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;

$| = 1;
my $log3;
open($log3, '>&=', 3) or undef $log3;
sub info { my $m = shift; print {$log3} "irc-adapter: $m\n" if $log3; }
sub warnl { my $m = shift; print STDERR "irc-adapter: $m\n"; }

# --- a small JSON reader and writer (perl-base has no JSON module) -----------------
sub json_decode {
    my ($s) = @_;
    my $pos = 0;
    my $ws = sub { $pos++ while $pos < length($s) && substr($s, $pos, 1) =~ /\s/ };
    my $val;
    $val = sub {
        $ws->();
        my $c = substr($s, $pos, 1);
        if ($c eq '{') {
            $pos++; my %h; $ws->();
            if (substr($s, $pos, 1) eq '}') { $pos++; return \%h; }
            while (1) {
                my $k = $val->(); $ws->(); $pos++;    # ':'
                $h{$k} = $val->(); $ws->();
                my $d = substr($s, $pos++, 1);
                return \%h if $d eq '}';
                die "bad object" unless $d eq ',';
            }
        } elsif ($c eq '[') {
            $pos++; my @a; $ws->();
            if (substr($s, $pos, 1) eq ']') { $pos++; return \@a; }
            while (1) {
                push @a, $val->(); $ws->();
                my $d = substr($s, $pos++, 1);
                return \@a if $d eq ']';
                die "bad array" unless $d eq ',';
            }
        } elsif ($c eq '"') {
            $pos++; my $out = '';
            while ((my $ch = substr($s, $pos++, 1)) ne '"') {
                die "bad string" if $pos > length($s);
                if ($ch eq '\\') {
                    my $e = substr($s, $pos++, 1);
                    if ($e eq 'u') { $out .= chr(hex(substr($s, $pos, 4))); $pos += 4; }
                    else { $out .= { n => "\n", t => "\t", r => "\r", b => "\b", f => "\f" }->{$e} // $e; }
                } else { $out .= $ch; }
            }
            return $out;
        } elsif (substr($s, $pos) =~ /^(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)/) {
            $pos += length($1); return $1 + 0;
        } elsif (substr($s, $pos, 4) eq 'true') { $pos += 4; return 1; }
        elsif (substr($s, $pos, 5) eq 'false') { $pos += 5; return 0; }
        elsif (substr($s, $pos, 4) eq 'null') { $pos += 4; return undef; }
        die "bad json at $pos";
    };
    return $val->();
}

# --- dipper envelopes ----------------------------------------------------------------
my $in = '';
sub send_frame {
    my ($ch, $subj, $payload, @labels) = @_;
    $payload //= '';
    my $out = sprintf("%s %s %d %d\n", $ch, $subj, scalar(@labels) / 2, length($payload));
    while (my ($k, $v) = splice(@labels, 0, 2)) { $out .= sprintf("%s %d\n%s", $k, length($v), $v); }
    $out .= $payload;
    my $off = 0;
    while ($off < length($out)) {
        my $n = syswrite(STDOUT, $out, length($out) - $off, $off);
        exit 1 unless defined $n;
        $off += $n;
    }
}

# Takes one whole frame off the front of $in, or returns undef if it is not all there.
sub next_frame {
    return undef unless $in =~ /\A[ \t]*(\S+)[ \t]+(\S+)[ \t]+(\d+)[ \t]+(\d+)[ \t]*\r?\n/;
    my ($ch, $subj, $n, $size) = ($1, $2, $3, $4);
    my $pos = $+[0];
    my %labels;
    for (1 .. $n) {
        return undef unless substr($in, $pos) =~ /\A(\S+)[ \t]+(\d+)\r?\n/;
        my ($k, $len) = ($1, $2);
        $pos += $+[0];
        return undef if length($in) < $pos + $len;
        $labels{$k} = substr($in, $pos, $len);
        $pos += $len;
    }
    return undef if length($in) < $pos + $size;
    my $payload = substr($in, $pos, $size);
    substr($in, 0, $pos + $size) = '';
    return { ch => $ch, subj => $subj, labels => \%labels, payload => $payload };
}

# --- IRC -------------------------------------------------------------------------------
my %opt = (server => '127.0.0.1', port => 6667, nick => 'switchyard', channels => [],
           adapter => 'irc', max_backoff_s => 30);
my ($sock, $nick, $welcomed, $started, $ibuf) = (undef, undef, 0, 0, '');
my ($backoff, $next_try) = (1, 0);
my @pending;    # egress lines waiting for a connection (bounded)
my $sel = IO::Select->new(\*STDIN);

sub irc_send {
    my ($line) = @_;
    return unless $sock;
    $line =~ s/[\r\n]+/ /g;
    syswrite($sock, "$line\r\n") // disconnect("write failed: $!");
}

sub disconnect {
    my ($why) = @_;
    if ($sock) { $sel->remove($sock); warnl("disconnected from $opt{server}:$opt{port}: $why; retrying in ${backoff}s"); close($sock); }
    ($sock, $welcomed, $ibuf) = (undef, 0, '');
    $next_try = time + $backoff;
    $backoff = $backoff * 2 > $opt{max_backoff_s} ? $opt{max_backoff_s} : $backoff * 2;
}

sub connect_irc {
    $sock = IO::Socket::INET->new(PeerAddr => $opt{server}, PeerPort => $opt{port}, Proto => 'tcp', Timeout => 5);
    if (!$sock) { $sock = undef; return disconnect("cannot connect: $!"); }
    $nick = $opt{nick};
    info("connected to $opt{server}:$opt{port}");
    irc_send("NICK $nick");
    irc_send("USER " . ($opt{user} // $nick) . " 0 * :" . ($opt{realname} // 'switchyard chat adapter'));
}

sub irc_line {
    my ($l) = @_;
    my $prefix = ($l =~ s/\A:(\S+)\s+//) ? $1 : '';
    my ($cmd, $rest) = split(/\s+/, $l, 2);
    $rest //= '';
    my ($params, $trail) = ($rest =~ /\A(.*?)(?:\s*:(.*))?\z/s);
    my @p = split(' ', $params // '');
    push @p, $trail if defined $trail;
    if ($cmd eq 'PING') { irc_send("PONG :" . ($p[-1] // '')); }
    elsif ($cmd eq '001') {
        $welcomed = 1; $backoff = 1;
        info("registered as $nick");
        irc_send("JOIN $_") for @{ $opt{channels} };
        irc_send(shift @pending) while @pending;
    } elsif ($cmd eq '433' && !$welcomed) {
        $nick .= '_';
        warnl("nick in use, trying $nick");
        irc_send("NICK $nick");
    } elsif ($cmd eq 'PRIVMSG' && @p >= 2) {
        my ($target, $text) = @p;
        return if $text =~ /\A\x01/;    # CTCP
        my ($from) = split(/!/, $prefix, 2);
        my $room = $target =~ /\A[#&]/ ? $target : $from;
        send_frame('chat', 'ingress', $text, adapter => $opt{adapter}, room => $room,
                   user => $prefix, nick => $from);
    } elsif ($cmd eq 'ERROR') { disconnect("server said ERROR " . ($p[-1] // '')); }
}

sub glob_match {
    my ($mask, $s) = @_;
    my $re = join('', map { $_ eq '*' ? '.*' : $_ eq '?' ? '.' : quotemeta($_) } split(/([*?])/, $mask));
    return $s =~ /\A$re\z/i;
}

sub rpc {
    my ($f) = @_;
    my ($id, $caller, $method) = @{ $f->{labels} }{qw(rpcID caller method)};
    return if ($id // '') eq 'skip';
    my @ids = (rpcID => $id // '', caller => $caller // '');
    if (($method // '') eq 'is_trusted') {
        my $q = eval { json_decode($f->{payload}) } // {};
        my $user = $q->{user} // '';
        my $ok = grep { /!.*@/ && glob_match($_, $user) } @{ $q->{admins} // [] };
        send_frame('rpc', 'return', $ok ? 'true' : 'false', @ids);
    } else {
        send_frame('rpc', 'return', '', @ids, error => "irc-adapter has no method " . ($method // ''));
    }
}

sub handle {
    my ($f) = @_;
    my $key = "$f->{ch}:$f->{subj}";
    if ($key eq 'command:options') {
        my $o = eval { json_decode($f->{payload}) };
        if ($o && ref $o->{data} eq 'HASH') { %opt = (%opt, %{ $o->{data} }); }
        else { warnl("options are not valid JSON: $@"); }
    } elsif ($key eq 'command:start') {
        $started = 1;
        $next_try = 0 unless $sock;
        send_frame('state', 'alive');
    } elsif ($key eq 'command:ping') { send_frame('state', $started ? 'alive' : 'loaded'); }
    elsif ($key eq 'command:stop') {
        irc_send("QUIT :stopping");
        $started = 0;
        send_frame('state', 'stopped');
    } elsif ($key eq 'chat:egress') {
        my $to = $f->{labels}{user} // $f->{labels}{room} // '';
        return warnl("egress without room") if $to eq '';
        for my $line (split(/\r?\n/, $f->{payload})) {
            next if $line eq '';
            my $cmd = "PRIVMSG $to :$line";
            if ($welcomed) { irc_send($cmd); }
            elsif (@pending < 100) { push @pending, $cmd; }
            else { warnl("not connected, egress dropped"); }
        }
    } elsif ($key eq 'rpc:call') { rpc($f); }
    else { info("skipping $key"); }
}

info("irc adapter started as " . ($ARGV[0] // 'operator'));
while (1) {
    if ($started && !$sock && time >= $next_try) {
        connect_irc();
        $sel->add($sock) if $sock;
    }
    my $wait = $sock || !$started ? 1 : ($next_try - time > 0 ? $next_try - time : 0.1);
    for my $fh ($sel->can_read($wait)) {
        if ($fh == \*STDIN || fileno($fh) == fileno(STDIN)) {
            my $n = sysread(STDIN, $in, 65536, length($in));
            if (!$n) {
                irc_send("QUIT :broker closed channel");
                warnl("daemon closed channel");
                exit 1;
            }
            while (my $f = next_frame()) { handle($f); }
        } else {
            my $n = sysread($sock, $ibuf, 65536, length($ibuf));
            if (!$n) { disconnect(defined $n ? "closed by server" : "read error: $!"); next; }
            while ($ibuf =~ s/\A([^\n]*)\n//) { (my $l = $1) =~ s/\r\z//; irc_line($l) if $l ne ''; }
        }
    }
}
