#!/bin/sh
# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#
# porttrace's guest suite for a second kernel. Runs as /init of the initramfs
# that tests/kernels/run.sh builds (busybox sh, no Python). It sets the guest
# up, runs each test (porttrace in the background -> wait for its header ->
# portload workload -> SIGINT -> check the JSON Lines with grep/sed/awk), and
# talks to the host only through the serial console:
#
#   GUEST KERNEL <uname -r> | <version>
#   GUEST LOADED yes|no
#   GUEST HOOKS <list from porttrace -v>
#   GUEST HOOKSET <which socket-call hooks, and why, from porttrace -v>
#   GUEST PASS <name>          GUEST FAIL <name>: <reason>
#   GUEST TIME <name> <start> <end>    guest uptime around each test
#   GUEST INFO <name>: <text>          what the test saw
#   ---ERR-BEGIN--- ... ---ERR-END---   porttrace -v stderr (gzip|base64), when
#                                       porttrace does not load
#   ---LOG-BEGIN--- ... ---LOG-END---   the lifecycle test's JSON log (gzip|base64)
#   GUEST DONE <uptime seconds>
#
# then powers the VM off. The test names must match GUEST_TESTS in run.sh.
# The suite runs twice: with the hooks porttrace picks (fentry/fexit on 6.1)
# and with PORTTRACE_SYSCALL_HOOKS=1 (names ending in -syscalls); then
# same-events compares the two.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
mount -t tmpfs tmpfs /tmp
mkdir -p /sys/fs/cgroup 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up

# A 4-port ephemeral range: exhaustion needs a handful of sockets, and the
# range test checks that porttrace reads this range from the kernel.
RANGE_LO=40000
RANGE_HI=40003
echo "$RANGE_LO $RANGE_HI" > /proc/sys/net/ipv4/ip_local_port_range

say() { echo "GUEST $*"; }
# info TEXT: what the current test saw, shown by the host under its result.
info() { INFO="$*"; }

say KERNEL "$(uname -r) | $(cut -d' ' -f1-3 /proc/version) $(sed -n 's/.*Debian \([^ ]*\).*/\1/p' /proc/version)"

# ---- JSON helpers (porttrace writes one flat object per line) ----

# jsel FILE|- COND...: print the lines matching every COND. COND is KEY=VALUE
# or KEY!=VALUE; VALUE is a number, null, true, false, [a,b] or a bare string.
jsel() {
	_f=$1
	shift
	awk -v conds="$*" '
	BEGIN {
		n = split(conds, c, " ")
		for (i = 1; i <= n; i++) {
			neg[i] = index(c[i], "!=") > 0
			p = neg[i] ? index(c[i], "!=") : index(c[i], "=")
			k = substr(c[i], 1, p - 1)
			v = substr(c[i], p + (neg[i] ? 2 : 1))
			if (v !~ /^(-?[0-9]+|null|true|false|\[.*\])$/)
				v = "\"" v "\""
			need[i] = "\"" k "\":" v
		}
	}
	{
		for (i = 1; i <= n; i++) {
			has = index($0, need[i] ",") || index($0, need[i] "}")
			if (has == neg[i])
				next
		}
		print
	}' "$_f"
}

# jval KEY: the value of KEY in each line of stdin (strings unquoted).
jval() {
	awk -v k="$1" '{
		re = "\"" k "\":(\"[^\"]*\"|\\[[^]]*\\]|[^,}]*)"
		if (match($0, re)) {
			v = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
			gsub(/"/, "", v)
			print v
		}
	}'
}

count() { jsel "$@" | wc -l; }

in_range() { [ -n "$1" ] && [ "$1" -ge $RANGE_LO ] 2>/dev/null && [ "$1" -le $RANGE_HI ]; }

# ---- porttrace and portload wrappers ----

LOADED=
PT=

# start_trace N: porttrace -> /tmp/tN.jsonl; returns once the header is
# written (the hooks are attached by then).
start_trace() {
	T=/tmp/t$1$SFX.jsonl
	E=/tmp/t$1$SFX.err
	rm -f "$T"
	porttrace -v --format json -o "$T" 2>"$E" &
	PT=$!
	_i=0
	while ! grep -q '"type":"header"' "$T" 2>/dev/null; do
		if ! kill -0 "$PT" 2>/dev/null; then
			wait "$PT"
			WHY="porttrace exited ($?): $(grep -E '^porttrace:' "$E" | tail -n 1)"
			PT=
			first_load no
			return 1
		fi
		_i=$((_i + 1))
		if [ $_i -gt 900 ]; then
			kill -9 "$PT"
			wait "$PT"
			PT=
			WHY="porttrace wrote no header within 90 s"
			first_load no
			return 1
		fi
		usleep 100000
	done
	first_load yes
	return 0
}

# Reports the outcome of the first porttrace start only.
first_load() {
	[ -n "$LOADED" ] && return
	LOADED=$1
	say LOADED "$1"
	if [ "$1" = yes ]; then
		say HOOKS "$(sed -n 's/^porttrace: attached: //p' "$E" | head -n 1)"
		say HOOKSET "$(sed -n 's/^porttrace: socket-call hooks: //p' "$E" | head -n 1)"
	else
		echo ---ERR-BEGIN---
		gzip -c "$E" | base64
		echo ---ERR-END---
	fi
}

# stop_trace: SIGINT, wait (at most 20 s), then check the trailer.
stop_trace() {
	[ -n "$PT" ] || return 1
	kill -INT "$PT"
	_i=0
	while kill -0 "$PT" 2>/dev/null && [ $_i -lt 200 ]; do
		_i=$((_i + 1))
		usleep 100000
	done
	kill -0 "$PT" 2>/dev/null && kill -9 "$PT"
	wait "$PT"
	_rc=$?
	PT=
	if [ $_rc -ne 0 ]; then
		WHY="porttrace exit status $_rc after SIGINT: $(grep -E '^porttrace:' "$E" | tail -n 1)"
		return 1
	fi
	_tr=$(tail -n 1 "$T")
	case $_tr in
	*'"type":"trailer"'*) ;;
	*) WHY="no trailer at the end of $T"; return 1 ;;
	esac
	if [ "$(echo "$_tr" | jval bad_records)" != 0 ]; then
		WHY="trailer reports bad records: $_tr"
		return 1
	fi
	if [ "$(echo "$_tr" | jval kernel_lost)" != 0 ]; then
		WHY="trailer reports lost events: $_tr"
		return 1
	fi
	return 0
}

# start_server PORT [ADDR]: a TCP portload server on ADDR:PORT (ADDR
# 127.0.0.1 unless given); SRV=its pid.
start_server() {
	portload --server -d 120 "${2:-127.0.0.1}" "$1" >/tmp/srv$1.out 2>/tmp/srv$1.err &
	SRV=$!
	_i=0
	while ! grep -q '^listening' /tmp/srv$1.out 2>/dev/null; do
		_i=$((_i + 1))
		if [ $_i -gt 100 ] || ! kill -0 "$SRV" 2>/dev/null; then
			WHY="portload server on $1 did not start: $(tail -n 1 /tmp/srv$1.err)"
			kill "$SRV" 2>/dev/null
			wait "$SRV"
			return 1
		fi
		usleep 100000
	done
	return 0
}

stop_server() {
	kill -INT "$SRV" 2>/dev/null
	wait "$SRV"
}

# client OUT ARGS...: portload client in the background so $CLI is its pid.
client() {
	_out=$1
	shift
	portload "$@" >"$_out" 2>"$_out.err" &
	CLI=$!
	wait "$CLI"
}

# local_port FILE: the first port printed by portload --print-ports.
local_port() { awk '$1 == "local" { print $4; exit }' "$1"; }

# ---- tests; each returns non-zero with the reason in WHY ----

# trace_and_serve N PORT: start trace N, then a server on PORT; a server
# that does not start stops the trace again.
trace_and_serve() {
	start_trace "$1" || return 1
	start_server "$2" && return 0
	stop_trace
	return 1
}

# (1) one connection, owners on both ends: client events carry the client
# pid, the accepted socket's events the server pid.
t_lifecycle() {
	L=/tmp/t1$SFX.jsonl
	trace_and_serve 1 5001 || return 1
	client /tmp/c1.out -n 1 --hold 300 --print-ports 127.0.0.1 5001
	usleep 300000
	stop_server
	stop_trace || return 1
	CPORT=$(local_port /tmp/c1.out)
	[ -n "$CPORT" ] || { WHY="portload printed no local port: $(cat /tmp/c1.out)"; return 1; }

	_c=$(jsel $L type=state lport=$CPORT raddr=127.0.0.1 rport=5001 old=SYN_SENT new=ESTABLISHED | head -n 1)
	[ -n "$_c" ] || { WHY="no client SYN_SENT->ESTABLISHED for port $CPORT"; return 1; }
	_p=$(echo "$_c" | jval pid)
	[ "$_p" = "$CLI" ] || { WHY="client SYN_SENT->ESTABLISHED has pid $_p, want client $CLI"; return 1; }
	_ck=$(echo "$_c" | jval cookie)
	[ "$(count $L type=state cookie=$_ck old=CLOSE new=SYN_SENT pid=$CLI)" -ge 1 ] ||
		{ WHY="no CLOSE->SYN_SENT with the client pid for cookie $_ck"; return 1; }

	_s=$(jsel $L type=state lport=5001 rport=$CPORT old=SYN_RECV new=ESTABLISHED | head -n 1)
	[ -n "$_s" ] || { WHY="no server SYN_RECV->ESTABLISHED for 5001<-$CPORT"; return 1; }
	_p=$(echo "$_s" | jval pid)
	[ "$_p" = "$SRV" ] || { WHY="server SYN_RECV->ESTABLISHED has pid $_p, want server $SRV (client $CLI)"; return 1; }
	_sk=$(echo "$_s" | jval cookie)

	[ "$(count $L type=port event=listen lport=5001 pid=$SRV)" -ge 1 ] ||
		{ WHY="no listen event on 5001 with the server pid"; return 1; }

	# Every event of either socket, by 4-tuple and by cookie, has its owner.
	_bad=$(jsel $L lport=$CPORT rport=5001 pid!=$CLI | head -n 1)
	[ -z "$_bad" ] || { WHY="client-side event with another pid: $_bad"; return 1; }
	_bad=$(jsel $L lport=5001 rport=$CPORT pid!=$SRV | head -n 1)
	[ -z "$_bad" ] || { WHY="server-side event with another pid: $_bad"; return 1; }
	[ -n "$_ck" ] && [ "$_ck" != 0 ] && [ -n "$_sk" ] && [ "$_sk" != 0 ] ||
		{ WHY="socket cookie missing or 0 (client '$_ck', accepted '$_sk')"; return 1; }
	_bad=$(jsel $L cookie=$_ck pid!=$CLI | head -n 1)
	[ -z "$_bad" ] || { WHY="event of the client socket with another pid: $_bad"; return 1; }
	_bad=$(jsel $L cookie=$_sk pid!=$SRV | head -n 1)
	[ -z "$_bad" ] || { WHY="event of the accepted socket with another pid: $_bad"; return 1; }
	info "client pid $CLI port $CPORT ($(count $L cookie=$_ck) events)," \
		"server pid $SRV port 5001 ($(count $L cookie=$_sk) events on the accepted socket)"
	return 0
}

# (2) connect() autobind: the alloc event's lport is the port the client saw.
t_autobind_port() {
	L=/tmp/t2$SFX.jsonl
	trace_and_serve 2 5002 || return 1
	client /tmp/c2.out -n 1 --close rst --print-ports 127.0.0.1 5002
	stop_server
	stop_trace || return 1
	CPORT=$(local_port /tmp/c2.out)
	[ -n "$CPORT" ] || { WHY="portload printed no local port: $(cat /tmp/c2.out)"; return 1; }
	_a=$(jsel $L type=port event=alloc proto=tcp rport=5002 pid=$CLI)
	[ -n "$_a" ] || { WHY="no tcp alloc event with the client pid $CLI"; return 1; }
	[ "$(echo "$_a" | wc -l)" -eq 1 ] || { WHY="more than one alloc event: $_a"; return 1; }
	_lp=$(echo "$_a" | jval lport)
	[ "$_lp" = "$CPORT" ] || { WHY="alloc lport $_lp, client saw $CPORT"; return 1; }
	in_range "$_lp" || { WHY="alloc lport $_lp outside $RANGE_LO-$RANGE_HI"; return 1; }
	info "alloc lport $_lp, err $(echo "$_a" | jval err), pid $CLI; portload saw port $CPORT"
	return 0
}

# (3) 6 concurrent connects, 4 ports: EADDRNOTAVAIL, seen as alloc-fail.
t_exhaustion() {
	L=/tmp/t3$SFX.jsonl
	trace_and_serve 3 5003 || return 1
	client /tmp/c3.out -c 6 -n 6 --hold 2000 --close rst --json 127.0.0.1 5003
	stop_server
	stop_trace || return 1
	_sum=$(grep '^{' /tmp/c3.out)
	_n=$(echo "$_sum" | sed -n 's/.*"EADDRNOTAVAIL":\([0-9]*\).*/\1/p')
	_ok=$(echo "$_sum" | jval ok)
	[ -n "$_n" ] && [ "$_n" -ge 1 ] || { WHY="portload saw no EADDRNOTAVAIL: $_sum"; return 1; }
	_got=$(count $L type=port event=alloc-fail err=EADDRNOTAVAIL pid=$CLI)
	[ "$_got" -eq "$_n" ] ||
		{ WHY="$_got alloc-fail EADDRNOTAVAIL events with the client pid, portload saw $_n: $_sum"; return 1; }
	_bad=$(jsel $L type=port event=alloc-fail pid!=$CLI | head -n 1)
	[ -z "$_bad" ] || { WHY="alloc-fail with another pid: $_bad"; return 1; }
	_bad=$(jsel $L type=port event=alloc-fail rport!=5003 | head -n 1)
	[ -z "$_bad" ] || { WHY="alloc-fail for another destination: $_bad"; return 1; }
	_got=$(count $L type=port event=alloc proto=tcp rport=5003 pid=$CLI)
	[ "$_got" -eq "$_ok" ] || { WHY="$_got alloc events, portload connected $_ok: $_sum"; return 1; }
	info "$_n alloc-fail EADDRNOTAVAIL and $_got alloc events with pid $CLI; portload: ok $_ok, EADDRNOTAVAIL $_n"
	return 0
}

# (4) bind(addr, 0) before connect: a bind event with req_port 0.
t_bind0() {
	L=/tmp/t4$SFX.jsonl
	trace_and_serve 4 5004 || return 1
	client /tmp/c4.out -n 1 --bind --close rst --print-ports 127.0.0.1 5004
	stop_server
	stop_trace || return 1
	CPORT=$(local_port /tmp/c4.out)
	[ -n "$CPORT" ] || { WHY="portload printed no local port: $(cat /tmp/c4.out) $(cat /tmp/c4.out.err)"; return 1; }
	_b=$(jsel $L type=port event=bind pid=$CLI | head -n 1)
	[ -n "$_b" ] || { WHY="no bind event with the client pid $CLI"; return 1; }
	[ "$(echo "$_b" | jval req_port)" = 0 ] || { WHY="bind event req_port is not 0: $_b"; return 1; }
	[ "$(echo "$_b" | jval err)" = null ] || { WHY="bind event has an error: $_b"; return 1; }
	_lp=$(echo "$_b" | jval lport)
	[ "$_lp" = "$CPORT" ] || { WHY="bind lport $_lp, client saw $CPORT"; return 1; }
	in_range "$_lp" || { WHY="bind lport $_lp outside $RANGE_LO-$RANGE_HI"; return 1; }
	info "bind req_port 0 -> lport $_lp, pid $CLI; portload saw port $CPORT"
	return 0
}

# (5) UDP sendto() from an unbound socket: an alloc event, proto udp.
t_udp_autobind() {
	L=/tmp/t5$SFX.jsonl
	start_trace 5 || return 1
	client /tmp/c5.out -n 1 --udp --print-ports 127.0.0.1 5005
	stop_trace || return 1
	CPORT=$(local_port /tmp/c5.out)
	[ -n "$CPORT" ] || { WHY="portload printed no local port: $(cat /tmp/c5.out)"; return 1; }
	_a=$(jsel $L type=port event=alloc proto=udp pid=$CLI | head -n 1)
	[ -n "$_a" ] || { WHY="no udp alloc event with the client pid $CLI"; return 1; }
	_lp=$(echo "$_a" | jval lport)
	[ "$_lp" = "$CPORT" ] || { WHY="udp alloc lport $_lp, client saw $CPORT"; return 1; }
	in_range "$_lp" || { WHY="udp alloc lport $_lp outside $RANGE_LO-$RANGE_HI"; return 1; }
	info "udp alloc lport $_lp, pid $CLI; portload saw port $CPORT"
	return 0
}

# (5b) bind() of a port a listener holds: bind-fail EADDRINUSE, with the
# pid of the process that asked.
t_bind_fail() {
	L=/tmp/t7$SFX.jsonl
	trace_and_serve 7 5007 || return 1
	_holder=$SRV
	portload --server -d 120 127.0.0.1 5007 >/tmp/srv5007b.out 2>&1 &
	_loser=$!
	wait $_loser
	stop_server
	stop_trace || return 1
	_f=$(jsel $L type=port event=bind-fail pid=$_loser)
	[ -n "$_f" ] || { WHY="no bind-fail event with the pid $_loser of the second server: $(cat /tmp/srv5007b.out)"; return 1; }
	[ "$(echo "$_f" | wc -l)" -eq 1 ] || { WHY="more than one bind-fail event: $_f"; return 1; }
	[ "$(echo "$_f" | jval err)" = EADDRINUSE ] || { WHY="bind-fail err is not EADDRINUSE: $_f"; return 1; }
	[ "$(echo "$_f" | jval lport)" = 5007 ] || { WHY="bind-fail lport is not 5007: $_f"; return 1; }
	[ "$(count $L type=port event=bind pid=$_holder lport=5007)" -eq 1 ] ||
		{ WHY="no bind event of the first server $_holder"; return 1; }
	info "bind-fail EADDRINUSE on 5007, pid $_loser; the holder $_holder bound it"
	return 0
}

# (5c) IPv6, whose bind and send go through their own functions
# (inet6_bind, inet6_sendmsg): bind(::1, 0) before connect, the acceptor,
# and a UDP autobind on send, each with the port the client saw.
t_ipv6() {
	L=/tmp/t10$SFX.jsonl
	start_trace 10 || return 1
	start_server 5010 ::1 || { stop_trace; return 1; }
	client /tmp/c10.out -n 1 --bind --close rst --print-ports ::1 5010
	_tcp=$CLI
	client /tmp/c10u.out -n 1 --udp --print-ports ::1 5010
	stop_server
	stop_trace || return 1
	_tp=$(local_port /tmp/c10.out)
	_up=$(local_port /tmp/c10u.out)
	[ -n "$_tp" ] && [ -n "$_up" ] ||
		{ WHY="portload printed no local port: $(cat /tmp/c10.out /tmp/c10.out.err)"; return 1; }
	_b=$(jsel $L type=port event=bind family=6 pid=$_tcp)
	[ "$(echo "$_b" | jval lport)" = "$_tp" ] && [ "$(echo "$_b" | jval req_port)" = 0 ] ||
		{ WHY="no IPv6 bind event for port $_tp with pid $_tcp: $_b"; return 1; }
	_a=$(jsel $L type=port event=accept family=6 pid=$SRV rport=$_tp)
	[ "$(echo "$_a" | wc -l)" -eq 1 ] && [ -n "$_a" ] ||
		{ WHY="not one IPv6 accept event of $_tp with the server pid $SRV: $_a"; return 1; }
	_u=$(jsel $L type=port event=alloc proto=udp family=6 pid=$CLI)
	[ "$(echo "$_u" | jval lport)" = "$_up" ] ||
		{ WHY="no IPv6 udp alloc event for port $_up with pid $CLI: $_u"; return 1; }
	info "bind [::1]:$_tp, accepted by $SRV, udp autobind $_up"
	return 0
}

# (6) The namespace's range as the BPF side reads it (CO-RE shim for
# net->ipv4.ip_local_ports.range), and as the header reports it.
t_range() {
	L=/tmp/t6$SFX.jsonl
	_r=$(tr -s ' \t' '  ' </proc/sys/net/ipv4/ip_local_port_range)
	[ "$_r" = "$RANGE_LO $RANGE_HI" ] || { WHY="ip_local_port_range reads '$_r'"; return 1; }
	trace_and_serve 6 5006 || return 1
	client /tmp/c6.out -n 1 --close rst 127.0.0.1 5006
	_tcp=$CLI
	client /tmp/c6u.out -n 1 --udp 127.0.0.1 5006
	stop_server
	stop_trace || return 1
	_want="[$RANGE_LO,$RANGE_HI]"
	_h=$(head -n 1 $L | jval ephemeral_range)
	[ "$_h" = "$_want" ] || { WHY="header ephemeral_range $_h, want $_want"; return 1; }
	_a=$(jsel $L type=port event=alloc pid=$_tcp proto=tcp | head -n 1)
	[ -n "$_a" ] || { WHY="no tcp alloc event"; return 1; }
	_v=$(echo "$_a" | jval range)
	[ "$_v" = "$_want" ] || { WHY="tcp alloc range $_v, want $_want"; return 1; }
	[ "$(echo "$_a" | jval ephemeral)" = true ] || { WHY="tcp alloc not marked ephemeral: $_a"; return 1; }
	_a=$(jsel $L type=port event=alloc pid=$CLI proto=udp | head -n 1)
	[ -n "$_a" ] || { WHY="no udp alloc event"; return 1; }
	_v=$(echo "$_a" | jval range)
	[ "$_v" = "$_want" ] || { WHY="udp alloc range $_v, want $_want"; return 1; }
	_bad=$(grep '"range":' $L | jsel - type=port range!=$_want | head -n 1)
	[ -z "$_bad" ] || { WHY="port event with another range: $_bad"; return 1; }
	info "ip_local_port_range '$_r'; header and $(grep -c '"range":' $L) port events say $_want"
	return 0
}

# (7) Which socket-call hooks porttrace attached, by its -v word and by the
# kernel's: a syscall tracepoint is attached through a perf event, one open
# perf_event file per program, where fentry/fexit and the cgroup and tp_btf
# hooks use none. WANT is fexit or syscalls.
t_hookset() {
	start_trace 8 || return 1
	_hooks=$(sed -n 's/^porttrace: attached: //p' "$E" | head -n 1)
	_perf=0
	for _fd in /proc/$PT/fd/*; do
		case $(readlink "$_fd") in *perf_event*) _perf=$((_perf + 1)) ;; esac
	done
	stop_trace || return 1
	_fn=$(echo "$_hooks" | tr ' ' '\n' | grep -c -E '^(fentry|fexit)/')
	_tp=$(echo "$_hooks" | tr ' ' '\n' | grep -c '^tracepoint/syscalls/')
	if [ "$WANT" = fexit ]; then
		[ "$_fn" -eq 11 ] && [ "$_tp" -eq 0 ] && [ "$_perf" -eq 0 ] ||
			{ WHY="want the fentry/fexit set only: $_fn fentry/fexit, $_tp syscall tracepoints, $_perf perf_event files ($_hooks)"; return 1; }
	else
		[ "$_fn" -eq 0 ] && [ "$_tp" -eq 9 ] && [ "$_perf" -eq 9 ] ||
			{ WHY="want the syscall tracepoints only: $_fn fentry/fexit, $_tp syscall tracepoints, $_perf perf_event files ($_hooks)"; return 1; }
	fi
	info "$_fn fentry/fexit, $_tp syscall tracepoints, $_perf perf_event files open;" \
		"$(sed -n 's/^porttrace: socket-call hooks: //p' "$E" | head -n 1)"
	return 0
}

# (8) The same events from both sets: each test's records of its own
# processes, reduced to what does not vary from run to run (no ports, pids,
# cookies or times), sorted, must match between the suites. PT_F_GONE
# (2048) is masked: whether a client's reset beat the server's accept() is
# a race under TCG, not a property of the hooks.
sig() {
	grep -E '"type":"(port|state)"' "$1" | grep '"comm":"portload"' | awk '{
		out = ""
		n = split("type event old new proto family err req_port flags opts reason", k, " ")
		for (i = 1; i <= n; i++) {
			re = "\"" k[i] "\":(\"[^\"]*\"|[^,}]*)"
			if (!match($0, re))
				continue
			f = substr($0, RSTART, RLENGTH)
			if (k[i] == "flags")
				f = "\"flags\":" and(substr(f, 9) + 0, 4294965247)
			out = out " " f
		}
		print out
	}' | sort
}

t_same_events() {
	_n=0
	for _t in 1 2 3 4 5 6 7 10; do
		[ -s /tmp/t$_t.jsonl ] && [ -s /tmp/t${_t}-syscalls.jsonl ] || continue
		sig /tmp/t$_t.jsonl >/tmp/sig$_t.fexit
		sig /tmp/t${_t}-syscalls.jsonl >/tmp/sig$_t.syscalls
		if ! cmp -s /tmp/sig$_t.fexit /tmp/sig$_t.syscalls; then
			WHY="test log $_t differs: fexit '$(diff /tmp/sig$_t.fexit /tmp/sig$_t.syscalls | grep '^[-+][^-+]' | head -n 2 | tr '\n' ' ')'"
			return 1
		fi
		_n=$((_n + $(wc -l </tmp/sig$_t.fexit)))
	done
	[ $_n -gt 0 ] || { WHY="no pair of logs to compare"; return 1; }
	info "$_n events alike in both sets"
	return 0
}

# (9) The host tax, paired: getppid() and a 1-byte pipe read() in ns per
# call (tools/ptsyscall) with nothing attached, beside porttrace with the
# fentry/fexit set, and beside it with the syscall tracepoints, in turn, in
# PAIRS rounds; the report gets the base's median and the medians of each
# round's ratio to its base. TCG makes every figure noisy and slow (each
# instruction emulated): a measurement, never a pass mark. It fails only
# when a run does not happen.
PAIRS=5
tax_run() {
	ptsyscall -n 100000 >/tmp/tax.out 2>/tmp/tax.err ||
		{ WHY="ptsyscall: $(cat /tmp/tax.err)"; return 1; }
	echo "$1 $_round $(jval getppid_ns </tmp/tax.out) $(jval pipe_read_ns </tmp/tax.out)" >>/tmp/tax.all
}

tax_traced() {
	[ "$1" = syscalls ] && export PORTTRACE_SYSCALL_HOOKS=1
	start_trace 9
	_rc=$?
	unset PORTTRACE_SYSCALL_HOOKS
	[ $_rc -eq 0 ] || return 1
	tax_run "$1" || { stop_trace; return 1; }
	stop_trace
}

# median FORMAT: of the numbers on stdin.
median() {
	sort -n | awk -v f="$1" '{ v[NR] = $1 } END { printf f, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# tax COLUMN NAME: NAME's ns per call (column 3: getppid, 4: pipe read)
# over base's in the same round, median over the rounds; "base": base's ns.
tax() {
	awk -v c="$1" -v n="$2" '$1 == "base" { b[$2] = $c } $1 == n { v[$2] = $c }
		END { for (r in v) print n == "base" ? v[r] : v[r] / b[r] }' /tmp/tax.all |
		median "$([ "$2" = base ] && echo %.0f || echo %.3f)"
}

t_host_tax() {
	rm -f /tmp/tax.all
	_round=0
	while [ $_round -lt $PAIRS ]; do
		# Alternate the order, so that drift does not favour one.
		if [ $((_round % 2)) -eq 0 ]; then
			tax_run base && tax_traced fexit && tax_traced syscalls || return 1
		else
			tax_traced syscalls && tax_traced fexit && tax_run base || return 1
		fi
		_round=$((_round + 1))
	done
	[ "$(wc -l </tmp/tax.all)" -eq $((3 * PAIRS)) ] ||
		{ WHY="$(wc -l </tmp/tax.all) runs recorded, want $((3 * PAIRS))"; return 1; }
	info "median of $PAIRS rounds (TCG: noisy): getppid $(tax 3 base) ns alone," \
		"x$(tax 3 fexit) beside fentry/fexit, x$(tax 3 syscalls) beside syscall tracepoints;" \
		"pipe read $(tax 4 base) ns, x$(tax 4 fexit), x$(tax 4 syscalls)"
	return 0
}

run_test() {
	WHY=
	INFO=
	if [ "$LOADED" = no ]; then
		say "FAIL $1: porttrace does not load on this kernel"
		return
	fi
	_t0=$(cut -d' ' -f1 /proc/uptime)
	if $2; then
		say "PASS $1"
	else
		say "FAIL $1: $WHY"
	fi
	say TIME "$1 $_t0 $(cut -d' ' -f1 /proc/uptime)"
	[ -z "$INFO" ] || say "INFO $1: $INFO"
}

# The suite, once with the hooks porttrace picks on this kernel (fentry/
# fexit: 6.1 has them), then with the syscall tracepoints forced.
suite() {
	run_test lifecycle$SFX t_lifecycle
	run_test autobind-port$SFX t_autobind_port
	run_test exhaustion$SFX t_exhaustion
	run_test bind0$SFX t_bind0
	run_test bind-fail$SFX t_bind_fail
	run_test udp-autobind$SFX t_udp_autobind
	run_test ipv6$SFX t_ipv6
	run_test range$SFX t_range
	run_test hookset$SFX t_hookset
}

SFX=
WANT=fexit
suite
SFX=-syscalls
WANT=syscalls
export PORTTRACE_SYSCALL_HOOKS=1
suite
unset PORTTRACE_SYSCALL_HOOKS
run_test same-events t_same_events
grep -qw pt_host_tax=1 /proc/cmdline && run_test host-tax t_host_tax

if [ -s /tmp/t1.jsonl ]; then
	echo ---LOG-BEGIN---
	gzip -c /tmp/t1.jsonl | base64
	echo ---LOG-END---
fi
say DONE "$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
