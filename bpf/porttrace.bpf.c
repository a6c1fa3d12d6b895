// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * porttrace BPF side: follows TCP sockets through their states and every
 * port allocation, failure and release, and writes tagged records
 * (porttrace.h) into one ring buffer.
 *
 * Hooks, and why each one:
 *  - tp_btf/inet_sock_set_state: every TCP transition, with a typed sock;
 *    two programs, so that none is lost to the kernel's recursion guard
 *    (catch_set_state).
 *  - cgroup/sock_create: runs in the creator's context for every inet socket;
 *    materialises the socket cookie so that the syscall hooks, which can only
 *    read it, see the same identity, and remembers the owner.
 *  - cgroup/post_bind{4,6}: the port an explicit bind() was granted, kept in
 *    socket storage until cgroup/sock_release gives it back.
 *  - cgroup/connect{4,6}: a connect() begins, with its socket and the
 *    destination asked for, read with plain loads.
 *  - syscalls:sys_exit_connect, sys_{enter,exit}_{bind,sendto,sendmsg}: what
 *    the caller asked for and what the kernel answered (errno), including the
 *    port an autobind picked, read from the socket when the call returns.
 *  - syscalls:sys_exit_accept{,4}: the process that accepted a connection,
 *    its owner from then on.
 *  - or, where the kernel allows fentry/fexit, the same facts from the
 *    functions behind those syscalls (inet_{stream,dgram}_connect,
 *    inet{,6}_bind, inet{,6}_sendmsg, inet_accept), which cost nothing to
 *    the other syscalls of the host; user space picks one set.
 *
 * Ownership: transitions driven by packets run in softirq, where "current"
 * is whoever happened to be on the CPU. The owner is therefore read only in
 * hooks that run in the owner's context (connect(), listen(), bind(),
 * accept(), a listener's close()) and travels in that record; user space
 * carries it on to the socket's later records by cookie. Socket storage
 * keeps what the kernel itself must know later: a listener's owner (the map
 * has BPF_F_CLONE, so a socket accepted from it starts with that owner until
 * accept() names its own), a bound port until its release, and the owner the
 * pid filter tests.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "porttrace.h"
#include "core_fixes.bpf.h"

#define AF_INET		2
#define AF_INET6	10
#define IPPROTO_TCP	6
#define IPPROTO_UDP	17

#define EAGAIN		11
#define EINTR		4
#define EPIPE		32
#define ENETDOWN	100
#define ENETUNREACH	101
#define EHOSTDOWN	112
#define EHOSTUNREACH	113
#define EADDRNOTAVAIL	99
#define ECONNRESET	104
#define ETIMEDOUT	110
#define ECONNREFUSED	111
#define EINPROGRESS	115

#define SOCK_BINDPORT_LOCK 8
#define PF_EXITING	0x00000004
#define S_IFMT		00170000
#define S_IFSOCK	0140000

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by user space between open and load; see user/tracer.c. */
const volatile __u8 targ_family = 0;		/* 0: both */
const volatile __u8 targ_proto = 0;		/* 0: both */
const volatile bool targ_pid_filter = false;
/* --cgroup: only owners in the subtree of this cgroup, at this depth. */
const volatile bool targ_cgroup_filter = false;
const volatile __u64 targ_cgroup_id = 0;
const volatile __u32 targ_cgroup_level = 0;
const volatile bool targ_port_filter = false;
const volatile bool targ_ephemeral = false;
const volatile bool targ_failures = false;
/* Every program returns at once: what the hook points alone cost, the floor
 * under porttrace's overhead (tools/ptfloor, make bench). Known at load
 * time, so the verifier drops the branch and whichever side is dead. */
const volatile bool targ_hooks_only = false;
/* Wake the reader only once a CPU has submitted this much; user space also
 * polls on a short timer, so no record waits longer than that timer. */
const volatile __u64 wakeup_bytes = 64 * 1024;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);	/* resized by user space */
} events SEC(".maps");

/* Records that did not fit in the ring, per CPU; summed by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Bytes submitted on this CPU since it last woke the reader; see submit(). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unwoken SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

/* --cgroup: cgroup id -> 1 inside the subtree, 0 outside. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_seen SEC(".maps");

/* One bit per port. */
struct port_bits {
	__u64 w[65536 / 64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_bits);
} port_filter SEC(".maps");

#define SKI_CHILD	(1u << 0)	/* accepted from a listener */
#define SKI_BOUND	(1u << 1)	/* bind() granted a port: .bound */
#define SKI_APP_CLOSED	(1u << 2)	/* the application let go of it */
#define SKI_ADOPTED	(1u << 3)	/* child: its acceptor is its owner */

struct sk_info {
	struct pt_owner owner;
	__u64 cookie;			/* the identity records use; 0: ask */
	__u64 synrecv_ns;		/* child made, transition not sent yet */
	__u32 flags;			/* SKI_* */
	/* What bind() gave, for a release that cgroup/sock_release must
	 * report without being able to read the socket's addresses. */
	struct pt_sock bound;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sk_info);
} sk_infos SEC(".maps");

/*
 * Which exit hook a call is for. cgroup/connect{4,6} also run outside
 * connect(2) (io_uring, kernel_connect(), sendmsg(MSG_FASTOPEN)): such an
 * entry must not be taken for the next bind() or sendto() of the thread.
 */
enum call_kind {
	CALL_CONNECT = 1,
	CALL_BIND = 2,
	CALL_SEND = 4,		/* sendto()/sendmsg() of an unbound UDP socket */
};

/* A syscall in flight, from its enter hook to its exit hook, by thread. */
struct call {
	__u64 ts;
	__u64 sk;
	__u16 sport;		/* local port at entry, host order; 0 = none */
	__u16 rport;		/* connect/sendto destination, host order */
	__u16 req_port;		/* bind() request, host order */
	__u8 opts;
	__u8 family;		/* of the address the caller passed */
	__u8 addr[16];
	/* A TCP connect()'s CLOSE -> SYN_SENT, in this same call, already
	 * read the owner and the socket through typed pointers: the exit
	 * hook reuses that instead of a chain of probe reads. */
	__u8 snap;
	__u8 kind;		/* enum call_kind */
	__u8 snap_opts;
	__u32 snap_flags;
	__u64 snap_net;
	struct pt_owner owner;
	struct pt_sock sock;
};

/* LRU: a call whose exit never comes (a connect hook outside connect(2))
 * is evicted, not left to fill the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct call);
} calls SEC(".maps");

/*
 * Sockets that close() finds after shutdown(SHUT_WR), in FIN_WAIT1,
 * FIN_WAIT2 or CLOSING: by socket, the thread closing it. LRU: a socket
 * whose CLOSE comes later, from a timer, leaves its entry to be evicted.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} closing SEC(".maps");

/*
 * Under -p, the acceptor of a child, from sys_exit_accept{,4} (which cannot
 * reach socket storage) to the child's next transition, which adopts it so
 * that the pid filter tests the acceptor. By socket; LRU: a child that never
 * changes state again leaves its entry to be evicted.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pt_owner);
} adopt SEC(".maps");

/*
 * TCP sockets only bound (no listen(), no connect()) before tracing began,
 * by cookie, put here by user space from the start-up snapshot: nothing in
 * the kernel marks them, and sock_release cannot read their port.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} prebound SEC(".maps");

/* Set by user space once prebound holds anything: until then sock_release
 * asks nothing of it. */
volatile bool watch_prebound;

/*
 * --cgroup: whether the current task's cgroup lies in the subtree. Asked
 * once per cgroup (the ancestor helper reads current, so only in a process's
 * own context) and remembered by cgroup id, for owners checked later in
 * softirq. bpf_get_current_ancestor_cgroup_id() in tracing programs: Linux
 * 5.14 (commit 95b861a7935b); never reached without --cgroup.
 */
static __always_inline bool cgroup_current_wanted(void)
{
	__u64 id;
	__u8 *seen, in;

	if (!targ_cgroup_filter)
		return true;
	id = bpf_get_current_cgroup_id();
	seen = bpf_map_lookup_elem(&cgroup_seen, &id);
	if (seen)
		return *seen;
	in = bpf_get_current_ancestor_cgroup_id(targ_cgroup_level) == targ_cgroup_id;
	bpf_map_update_elem(&cgroup_seen, &id, &in, BPF_ANY);
	return in;
}

static __always_inline void fill_owner(struct pt_owner *o)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	__u64 id = bpf_get_current_pid_tgid();

	o->pid = id >> 32;
	o->tid = (__u32)id;
	o->start_ns = BPF_CORE_READ(leader, start_time);
	o->cgroup_id = bpf_get_current_cgroup_id();
	/* Decided here, in the owner's context, for the checks in softirq. */
	cgroup_current_wanted();
	/* comm is the process's name, the thread group leader's, as ps and ss
	 * show it; a thread may have named itself apart (dig's isc-net-0000). */
	bpf_get_current_comm(o->thread, sizeof(o->thread));
	if (o->pid == o->tid) {
		__builtin_memcpy(o->comm, o->thread, sizeof(o->comm));
	} else {
		__builtin_memset(o->comm, 0, sizeof(o->comm));
		bpf_core_read_str(o->comm, sizeof(o->comm), &leader->comm);
	}
}

/* An identity for a socket whose cookie cannot be had: opaque, random, and
 * apart from the kernel's cookies (which count up from 1) by its top bit. */
static __always_inline __u64 anon_id(void)
{
	return PT_ANON_ID | (__u64)bpf_get_prandom_u32() << 31 | bpf_get_prandom_u32();
}

static __always_inline bool pid_wanted(__u32 pid)
{
	return !targ_pid_filter || bpf_map_lookup_elem(&pid_filter, &pid);
}

/* The filters on the process running the hook, in its own context. */
static __always_inline bool current_wanted(__u32 pid)
{
	return pid_wanted(pid) && cgroup_current_wanted();
}

/* The filters on an owner remembered earlier (fill_owner() decided its
 * cgroup then). */
static __always_inline bool owner_wanted(const struct pt_owner *o)
{
	__u8 *seen;

	if (!pid_wanted(o->pid))
		return false;
	if (!targ_cgroup_filter)
		return true;
	seen = bpf_map_lookup_elem(&cgroup_seen, &o->cgroup_id);
	return seen && *seen;
}

/* Owners must be stored with every socket for a filter to test them. */
#define targ_owner_filter (targ_pid_filter || targ_cgroup_filter)

static __always_inline bool port_wanted(__u16 lport, __u16 rport)
{
	struct port_bits *bits;
	__u32 zero = 0;

	if (!targ_port_filter)
		return true;
	bits = bpf_map_lookup_elem(&port_filter, &zero);
	if (!bits)
		return false;
	return ((bits->w[(lport >> 6) & 1023] >> (lport & 63)) & 1) ||
	       ((bits->w[(rport >> 6) & 1023] >> (rport & 63)) & 1);
}

static __always_inline bool family_wanted(__u16 family)
{
	if (family != AF_INET && family != AF_INET6)
		return false;
	return !targ_family || targ_family == family;
}

static __always_inline bool proto_wanted(__u16 proto)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return false;
	return !targ_proto || targ_proto == proto;
}

/* A record that will never be made: the ring was full, or what it needed
 * could not be kept (a full call map, storage the kernel would not give). */
static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *cnt = bpf_map_lookup_elem(&lost, &zero);

	if (cnt)
		(*cnt)++;
}

static __always_inline void *reserve(__u64 size)
{
	void *rec = bpf_ringbuf_reserve(&events, size, 0);

	if (!rec)
		count_lost();
	return rec;
}

/*
 * Wake the reader once this CPU has submitted wakeup_bytes since it last
 * did. Asking the ring how much is queued instead reads the consumer
 * position, which the reader writes as it goes: a cache miss on every
 * record, about 40 ns of the state program's 550 (bpf_stats, interleaved
 * runs of both).
 */
static __always_inline void submit(void *rec)
{
	__u32 zero = 0;
	__u64 *unwoken_bytes = bpf_map_lookup_elem(&unwoken, &zero);
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (unwoken_bytes) {
		*unwoken_bytes += ((struct pt_hdr *)rec)->size;
		if (*unwoken_bytes >= wakeup_bytes) {
			*unwoken_bytes = 0;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	bpf_ringbuf_submit(rec, flags);
}

static __always_inline void fill_hdr(struct pt_hdr *h, __u16 type, __u16 size)
{
	h->type = type;
	h->size = size;
	h->cpu = bpf_get_smp_processor_id();
	h->ts_ns = bpf_ktime_get_ns();
}

/*
 * The socket readers, one per fact. direct: sk is a typed (BTF) pointer of a
 * tp_btf hook, read with plain loads, no helper calls, which made up half
 * of the state program's cost; otherwise a raw one (from a file
 * descriptor), read with bpf_probe_read_kernel(). direct is a constant at
 * every call, so the compiler keeps one side and the verifier sees no other.
 */
#define SK_READ(direct, p, field) ((direct) ? (p)->field : BPF_CORE_READ(p, field))

static __always_inline __u16 sk_family(struct sock *sk, bool direct)
{
	return SK_READ(direct, sk, __sk_common.skc_family);
}

static __always_inline __u16 sk_proto(struct sock *sk, bool direct)
{
	return SK_READ(direct, sk, sk_protocol);
}

static __always_inline struct net *sk_net(struct sock *sk, bool direct)
{
	return SK_READ(direct, sk, __sk_common.skc_net.net);
}

/* inet_sport, which, unlike inet_num, survives the release of an autobound
 * port at CLOSE; host order. */
static __always_inline __u16 sk_sport(struct sock *sk, bool direct)
{
	return bpf_ntohs(SK_READ(direct, (struct inet_sock *)sk, inet_sport));
}

static __always_inline __u16 sk_dport(struct sock *sk, bool direct)
{
	return bpf_ntohs(SK_READ(direct, sk, __sk_common.skc_dport));
}

/* The cookie a raw socket has, 0 if nothing asked for one yet: hooks that
 * may not make one (bpf_get_socket_cookie() takes no raw pointer) read it. */
static __always_inline __u64 sk_cookie(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
}

/* Identity and addresses of a socket. */
static __always_inline void fill_sock(struct pt_sock *s, struct sock *sk, __u16 family, bool direct)
{
	__u32 *l = (void *)s->laddr, *r = (void *)s->raddr;

	s->netns = SK_READ(direct, sk_net(sk, direct), ns.inum);
	s->family = family;
	s->proto = sk_proto(sk, direct);
	s->lport = sk_sport(sk, direct);
	s->rport = sk_dport(sk, direct);
	if (family == AF_INET) {
		l[0] = SK_READ(direct, sk, __sk_common.skc_rcv_saddr);
		r[0] = SK_READ(direct, sk, __sk_common.skc_daddr);
		l[1] = l[2] = l[3] = r[1] = r[2] = r[3] = 0;
	} else if (direct) {
		for (int i = 0; i < 4; i++) {
			l[i] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			r[i] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
		}
	} else {
		bpf_core_read(s->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(s->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

static __always_inline __u32 reserved_flag(struct net *net, __u16 port)
{
	unsigned long *reserved = BPF_CORE_READ(net, ipv4.sysctl_local_reserved_ports);
	unsigned long word = 0;

	if (!reserved || !port)
		return 0;
	bpf_probe_read_kernel(&word, sizeof(word), &reserved[port / 64]);
	return (word >> (port % 64)) & 1 ? PT_F_RESERVED : 0;
}

/* The ephemeral range that applies to this socket (its own
 * IP_LOCAL_PORT_RANGE when set, else its namespace's) and whether the port
 * is one of ip_local_reserved_ports. */
static __always_inline __u32 fill_range(struct pt_sock *s, struct sock *sk, struct net *net,
					bool direct, bool reserved)
{
	__u32 flags = 0, own = sock_port_range(sk);

	net_port_range(net, &s->range_lo, &s->range_hi, direct);
	/* The socket's range only narrows the namespace's one. */
	if (own) {
		__u16 lo = own & 0xffff, hi = own >> 16;

		if (lo && lo > s->range_lo && lo <= s->range_hi)
			s->range_lo = lo, flags |= PT_F_RANGE_SOCK;
		if (hi && hi < s->range_hi && hi >= s->range_lo)
			s->range_hi = hi, flags |= PT_F_RANGE_SOCK;
	}
	if (reserved)
		flags |= reserved_flag(net, s->lport);
	return flags;
}

static __always_inline bool in_range(const struct pt_sock *s)
{
	return s->lport >= s->range_lo && s->lport <= s->range_hi;
}

/* Socket options at this moment. */
static __always_inline __u8 sock_opts(struct sock *sk, bool direct)
{
	__u8 opts = 0;

	if (direct ? BPF_CORE_READ_BITFIELD(&sk->__sk_common, skc_reuse)
		   : BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_reuse))
		opts |= PT_OPT_REUSEADDR;
	if (direct ? BPF_CORE_READ_BITFIELD(&sk->__sk_common, skc_reuseport)
		   : BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_reuseport))
		opts |= PT_OPT_REUSEPORT;
	if (sock_bind_no_port(sk))
		opts |= PT_OPT_BIND_NO_PORT;
	if ((direct ? BPF_CORE_READ_BITFIELD(sk, sk_userlocks)
		    : BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks)) & SOCK_BINDPORT_LOCK)
		opts |= PT_OPT_BOUND_PORT;
	return opts;
}

/*
 * Why a TCP socket reached CLOSE. tcp_reset() and the timers store sk_err
 * before tcp_done() moves the socket to CLOSE, so the error is readable here.
 */
static __always_inline __u8 close_reason(struct sock *sk, int oldstate, __u16 lport)
{
	int err = sk->sk_err;

	/* tcp_reset() says EPIPE in CLOSE_WAIT, ECONNRESET elsewhere. */
	if (err == ECONNRESET || err == EPIPE)
		return PT_REASON_RST_RECV;
	if (err == ECONNREFUSED)
		return PT_REASON_REFUSED;
	if (err == ETIMEDOUT)
		return PT_REASON_TIMEOUT;
	/* An ICMP error: at once in SYN_SENT, or as the soft error that
	 * tcp_write_err() reports when retransmissions give up. */
	if (err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN || err == ENETDOWN)
		return PT_REASON_UNREACHABLE;
	if (err)
		return PT_REASON_ERROR;
	/* inet_hash_connect() found no port: CLOSE -> SYN_SENT -> CLOSE
	 * without one, and connect() returns EADDRNOTAVAIL. */
	if (oldstate == TCP_SYN_SENT && !lport)
		return PT_REASON_NO_PORT;
	switch (oldstate) {
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_CLOSING:
	case TCP_LAST_ACK:
	case TCP_TIME_WAIT:
		return PT_REASON_CLOSE;
	case TCP_LISTEN:
	case TCP_CLOSE:
		return PT_REASON_SOCK_CLOSE;
	default:
		/* ESTABLISHED/CLOSE_WAIT/SYN_* straight to CLOSE without an
		 * error: this side aborted (SO_LINGER 0, unread data). */
		return PT_REASON_RST_SENT;
	}
}

static __always_inline bool sock_dead(struct sock *sk)
{
	return sk->__sk_common.skc_flags &
	       (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DEAD));
}

/*
 * Did tcp_time_wait() hand the port to a time-wait socket? It does so only
 * from FIN_WAIT1/FIN_WAIT2/CLOSING. The socket is already unhashed when
 * this tracepoint fires, so the other ways from there to CLOSE are told
 * apart by what they leave behind:
 *  - a reset, either way, or a timeout set sk_err;
 *  - an orphan with TCP_LINGER2 < 0 closes from FIN_WAIT2 at once;
 *  - close() with unread data, or with SO_LINGER 0, after shutdown(): the
 *    abort runs inside close(), before close() orphans the socket, while a
 *    time-wait that close() makes comes after. sock_release marked such a
 *    socket in closing[] with the closing thread.
 * What remains unseen (tcp_max_tw_buckets reached, memory pressure in
 * close()) the --exhaustion check finds: those time-wait sockets are gone.
 */
static __always_inline bool took_timewait(struct sock *sk, struct tcp_sock *tp, int oldstate,
					  bool *aborted)
{
	__u64 key = (__u64)sk;
	__u32 *closer;

	if (oldstate != TCP_FIN_WAIT1 && oldstate != TCP_FIN_WAIT2 && oldstate != TCP_CLOSING)
		return false;
	if (sk->sk_err || (oldstate == TCP_FIN_WAIT2 && tp->linger2 < 0))
		return false;
	closer = bpf_map_lookup_elem(&closing, &key);
	if (closer) {
		*aborted = *closer == (__u32)bpf_get_current_pid_tgid() && !sock_dead(sk);
		bpf_map_delete_elem(&closing, &key);
		if (*aborted)
			return false;
	}
	return true;
}

/*
 * Has the application let go of the socket? sock_release says so for those
 * with storage; an orphan (SOCK_DEAD, set by close() before the socket's
 * last transitions) says so for every socket, those bound before tracing
 * began included.
 */
static __always_inline bool app_closed(struct sock *sk, const struct sk_info *info)
{
	return (info && (info->flags & SKI_APP_CLOSED)) || sock_dead(sk);
}

/* Hand what this record holds to the connect() in flight on this socket. */
static __always_inline void snap_connect(struct sock *sk, struct sock *rd,
					 const struct pt_rec_state *rec, __u32 flags)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&calls, &tid);

	if (!c || c->sk != (__u64)sk || c->kind != CALL_CONNECT)
		return;
	c->owner = rec->owner;
	c->sock = rec->sk;
	c->snap_flags = flags & PT_F_RANGE_SOCK;
	c->snap_opts = sock_opts(rd, true);
	c->snap_net = (__u64)sk_net(rd, true);
	c->snap = 1;
}

/* What handle_set_state() learns of a transition before it writes it. */
struct transition {
	struct sk_info *info;	/* socket storage, if the socket has any */
	bool owner_here;	/* the caller of connect()/listen() is the owner */
	bool aborted;		/* close() aborted it: it sent a RST */
	__u16 lport;
	__u8 opts;
	__u32 flags;
};

/*
 * Owner lookup. Returns false when nothing is to be written (a child folded
 * into its next transition, or storage the kernel refused).
 */
static __always_inline bool state_owner(struct sock *sk, int oldstate, int newstate,
					struct transition *t)
{
	struct sk_info *info;

	if (oldstate == TCP_CLOSE && (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN)) {
		/*
		 * connect() and listen() run in the caller's context: that
		 * caller is the owner from now on (it may be a child of the
		 * process that created the socket), and this record names it.
		 * User space carries the owner on to the socket's later
		 * records by cookie. Storage, whose allocation and RCU free
		 * cost more than the rest of this hook, is kept for what the
		 * kernel itself must know later: a listener's owner, which
		 * its children inherit until accept() names theirs, a bound
		 * socket's port, and the owner the pid filter tests.
		 */
		t->owner_here = true;
		info = bpf_sk_storage_get(&sk_infos, sk, 0,
					  newstate == TCP_LISTEN || targ_owner_filter ?
					  BPF_SK_STORAGE_GET_F_CREATE : 0);
		if (info) {
			fill_owner(&info->owner);
			info->cookie = bpf_get_socket_cookie(sk);
		}
	} else if (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV) {
		/*
		 * A new child, its storage cloned from a listener porttrace saw
		 * start: the owner it names comes with it. Until Linux 6.x fixed
		 * the order in inet_csk_clone_lock(), this transition fired
		 * before the child had its peer's port, and the child still
		 * carried the listener's cookie. Both are settled by its next
		 * transition, which follows in the same softirq: remember the
		 * time and send one record then.
		 *
		 * A child of a listener older than tracing has no storage and
		 * nobody to name. Making storage for it only to fold this
		 * record (an allocation, and an RCU free when it goes) cost
		 * three times what sending the record does (bpf_stats, a
		 * connection storm): it is sent as it is, and user space knows
		 * the child by it. Unless its peer's port is still 0, the old
		 * order: then its cookie needs storage, as above.
		 */
		info = bpf_sk_storage_get(&sk_infos, sk, 0, 0);
		if (info || !sk->__sk_common.skc_dport) {
			__u64 cookie = bpf_get_socket_cookie(sk);

			if (!info)
				info = bpf_sk_storage_get(&sk_infos, sk, 0,
							  BPF_SK_STORAGE_GET_F_CREATE);
			if (!info) {
				count_lost();
				return false;
			}
			info->flags = (info->flags & ~(SKI_BOUND | SKI_ADOPTED)) | SKI_CHILD;
			/* The listener's cookie, cloned: the child needs an
			 * identity of its own, and never a kernel address. */
			info->cookie = cookie == info->cookie ? anon_id() : cookie;
			info->synrecv_ns = bpf_ktime_get_ns();
			return false;
		}
	} else if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE) {
		/*
		 * A listener closes inside close() or shutdown(), in the
		 * context of the last process that held it: the process that
		 * called listen() may be long gone (a daemon that forked).
		 */
		t->owner_here = true;
		info = bpf_sk_storage_get(&sk_infos, sk, 0, 0);
		if (info)
			fill_owner(&info->owner);
	} else {
		info = bpf_sk_storage_get(&sk_infos, sk, 0, 0);
		/* -p: a child's owner is its acceptor once accept() named it;
		 * a child of a listener older than tracing gets storage for it. */
		if (targ_owner_filter &&
		    (!info || (info->flags & (SKI_CHILD | SKI_ADOPTED)) == SKI_CHILD)) {
			__u64 key = (__u64)sk;
			struct pt_owner *acceptor = bpf_map_lookup_elem(&adopt, &key);

			if (acceptor && !info)
				info = bpf_sk_storage_get(&sk_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
			if (acceptor && info) {
				info->owner = *acceptor;
				info->flags |= SKI_CHILD | SKI_ADOPTED;
				bpf_map_delete_elem(&adopt, &key);
			}
		}
	}
	t->info = info;
	return true;
}

/*
 * Release classification, at CLOSE: the port goes back to the kernel, unless
 * tcp_time_wait() handed it to a time-wait socket, or bind() pinned it
 * (SOCK_BINDPORT_LOCK) and the application still holds the socket: then it
 * is given back when the application closes it, in cgroup/sock_release. A
 * child shares its listener's port and gives back nothing (one without
 * storage is told by user space, which saw its LISTEN -> SYN_RECV); but a
 * time-wait socket it leaves holds the listener's port toward its peer,
 * and a bind() of that port without SO_REUSEADDR fails while it lasts.
 */
static __always_inline void state_release(struct sock *sk, struct tcp_sock *tp, int oldstate,
					  struct transition *t)
{
	struct sk_info *info = t->info;
	bool child = info && (info->flags & SKI_CHILD);

	if (child)
		t->flags |= PT_F_ACCEPTED;
	if (!t->lport)
		return;
	if (took_timewait(sk, tp, oldstate, &t->aborted)) {
		/* Bound or not: the time-wait socket holds the port now, and
		 * sock_release must not give it back. */
		t->flags |= PT_F_TIMEWAIT;
		if (info)
			info->flags &= ~SKI_BOUND;
	} else if (!child && (!(t->opts & PT_OPT_BOUND_PORT) || app_closed(sk, info))) {
		t->flags |= PT_F_RELEASE;
		/* sock_release must not give it back a second time. */
		if (info)
			info->flags &= ~SKI_BOUND;
	}
}

/* Record filling. */
static __always_inline void state_fill(struct pt_rec_state *rec, struct sock *sk, struct sock *rd,
				       int oldstate, int newstate, __u16 family, struct transition *t)
{
	struct sk_info *info = t->info;
	__u32 flags = t->flags;

	fill_hdr(&rec->hdr, PT_REC_STATE, sizeof(*rec));
	rec->folded_ns = 0;
	if (t->owner_here && !info) {
		fill_owner(&rec->owner);
		flags |= PT_F_OWNER_KNOWN;
	} else if (info) {
		rec->owner = info->owner;
		/* A child of a listener older than tracing has storage, but
		 * nobody to name. */
		if (info->owner.pid)
			flags |= PT_F_OWNER_KNOWN;
		if (info->synrecv_ns) {
			rec->folded_ns = info->synrecv_ns;
			info->synrecv_ns = 0;
			flags |= PT_F_FOLDED_SYNRECV;
		}
	} else {
		__builtin_memset(&rec->owner, 0, sizeof(rec->owner));
	}
	rec->sk.cookie = info && info->cookie ? info->cookie : bpf_get_socket_cookie(sk);
	fill_sock(&rec->sk, rd, family, true);
	rec->sk._pad = 0;
	/* The range matters where this record also becomes a port event
	 * (listen, release, time-wait) or lends its socket to connect()'s
	 * alloc record; nothing shows it on a plain transition. */
	if (newstate == TCP_CLOSE || newstate == TCP_LISTEN || newstate == TCP_SYN_SENT)
		flags |= fill_range(&rec->sk, rd, sk_net(rd, true), true, newstate == TCP_LISTEN);
	else
		rec->sk.range_lo = rec->sk.range_hi = 0;
	if (!t->lport)
		flags |= PT_F_PORT_PENDING;
	rec->oldstate = oldstate;
	rec->newstate = newstate;
	if (t->aborted)
		rec->reason = PT_REASON_RST_SENT;
	else if (newstate == TCP_CLOSE)
		rec->reason = close_reason(sk, oldstate, t->lport);
	else
		rec->reason = PT_REASON_NONE;
	rec->opts = t->opts;
	rec->flags = flags;
	t->flags = flags;
}

static __always_inline int set_state(struct sock *sk, int oldstate, int newstate)
{
	struct transition t = {};
	struct pt_rec_state *rec;
	struct tcp_sock *tp;
	struct sock *rd;
	__u16 family;

	/* Failures come from syscall exits only: nothing here to store or
	 * send, and the storage of listeners and children costs the most. */
	if (targ_hooks_only || targ_failures)
		return 0;
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (targ_proto && targ_proto != IPPROTO_TCP)
		return 0;
	family = sk_family(sk, true);
	if (!family_wanted(family))
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	/* The same socket, typed as the tcp_sock it is: the verifier lets
	 * plain loads reach its inet_sock fields through this one only. */
	rd = (struct sock *)tp;
	if (!state_owner(sk, oldstate, newstate, &t))
		return 0;
	if (targ_owner_filter && (!t.info || !owner_wanted(&t.info->owner))) {
		/* A child the filter drops now may be accepted by a process
		 * it wants: sys_exit_accept, which cannot make a cookie, must
		 * find one. */
		if (oldstate == TCP_LISTEN)
			bpf_get_socket_cookie(sk);
		return 0;
	}
	t.lport = sk_sport(rd, true);
	if (!port_wanted(t.lport, sk_dport(rd, true)))
		return 0;
	/* Options matter where a port is taken for listening or given back. */
	if (newstate == TCP_CLOSE || newstate == TCP_LISTEN)
		t.opts = sock_opts(rd, true);
	if (newstate == TCP_CLOSE)
		state_release(sk, tp, oldstate, &t);
	else if (t.info && (t.info->flags & SKI_CHILD))
		t.flags |= PT_F_ACCEPTED;
	if (targ_ephemeral && t.lport) {
		__u16 lo, hi;

		net_port_range(sk_net(rd, true), &lo, &hi, true);
		if (t.lport < lo || t.lport > hi)
			return 0;
	}

	rec = reserve(sizeof(*rec));
	if (!rec)
		return 0;
	state_fill(rec, sk, rd, oldstate, newstate, family, &t);
	if (t.owner_here && newstate == TCP_SYN_SENT)
		snap_connect(sk, rd, rec, t.flags);
	submit(rec);
	return 0;
}

/*
 * Every transition exactly once, though the kernel skips a tracing program
 * that fires on a CPU where it is already running (it only counts the skip,
 * recursion_misses). That happens when a softirq lands on handle_set_state()
 * running in process context (connect(), close(), a backlog processed at
 * release_sock() with softirqs enabled): in storms of FIN-closing
 * connections, the receive softirq that an interrupt's exit runs completes
 * other sockets' FIN handshakes on that CPU. So a second program on the
 * tracepoint, attached after the first and thus run after it for each
 * transition, takes what the first skipped:
 *  - A socket owned by its user (lock_sock()) makes its transition in
 *    process context; the first program is never skipped there, since the
 *    tracepoint runs with preemption off and nothing inside the program
 *    makes a transition. The second returns at once. (A softirq never moves
 *    an owned socket: its packets and timers wait for release_sock().)
 *  - Any other transition runs in softirq, or in process context with
 *    softirqs off (a closing listener's queued children). The first program,
 *    unless skipped, marks the transition it took, per CPU; the second takes
 *    it when it is not the one marked. Nothing makes a transition between
 *    the two runs, so a mark that differs means the first was skipped.
 * If the second is skipped (a softirq landing on it while it returns for an
 * owned socket), the first took that transition, as they run one after the
 * other. Each is a program of its own, with its own recursion guard and,
 * since Linux 6.13, its own per-CPU private stack: a tail call from one into
 * the other would pass the guard and run both on one private stack, the
 * nested run overwriting the run it interrupted. That is how an earlier
 * attempt wrote one transition twice and one socket's record under another
 * socket's cookie.
 */
struct state_mark {
	__u64 sk;
	__u32 trans;		/* old << 8 | new */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct state_mark);
} state_marks SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	struct state_mark *m = bpf_map_lookup_elem(&state_marks, &zero);

	if (targ_hooks_only)
		return 0;
	if (m) {
		m->sk = (__u64)sk;
		m->trans = (__u32)oldstate << 8 | (__u32)newstate;
	}
	return set_state(sk, oldstate, newstate);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(catch_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	struct state_mark *m;

	if (targ_hooks_only || sk->sk_lock.owned)
		return 0;
	m = bpf_map_lookup_elem(&state_marks, &zero);
	if (!m || (m->sk == (__u64)sk && m->trans == ((__u32)oldstate << 8 | (__u32)newstate)))
		return 0;
	return set_state(sk, oldstate, newstate);
}

SEC("cgroup/sock_create")
int handle_sock_create(struct bpf_sock *ctx)
{
	struct sk_info *info;

	if (targ_hooks_only)
		return 1;
	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return 1;
	/* The cookie is generated lazily; do it now, in a hook that may,
	 * so that the syscall hooks can read it from sk->sk_cookie. */
	__u64 cookie = bpf_get_socket_cookie(ctx);

	/* Owners travel in records; only the pid filter needs one stored
	 * for every socket from its birth. */
	if (!targ_owner_filter)
		return 1;
	info = bpf_sk_storage_get(&sk_infos, ctx, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (info) {
		fill_owner(&info->owner);
		info->cookie = cookie;
	}
	return 1;
}

/* Runs in the binder's context: its namespace is the socket's. */
static __always_inline int post_bind(struct bpf_sock *ctx, bool v6)
{
	struct task_struct *task;
	struct sk_info *info;
	struct pt_sock *b;
	struct net *net;

	/* What is stored here serves releases, which failures mode omits. */
	if (targ_hooks_only || targ_failures || !ctx->src_port)
		return 1;
	/* As in connect_begin: sys_exit_bind reads the cookie. */
	bpf_get_socket_cookie(ctx);
	task = (void *)bpf_get_current_task();
	net = BPF_CORE_READ(task, nsproxy, net_ns);
	info = bpf_sk_storage_get(&sk_infos, ctx, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!info) {
		/* The release of this port could not be told. */
		count_lost();
		return 1;
	}
	/* The binder owns it until a connect() or listen() says otherwise:
	 * sock_release names it when it gives the port back. */
	if (!info->owner.pid)
		fill_owner(&info->owner);
	info->flags |= SKI_BOUND;
	b = &info->bound;
	b->netns = BPF_CORE_READ(net, ns.inum);
	b->family = ctx->family;
	b->proto = ctx->protocol;
	b->lport = ctx->src_port;
	if (v6) {
		__u32 *a = (void *)b->laddr;

		a[0] = ctx->src_ip6[0];
		a[1] = ctx->src_ip6[1];
		a[2] = ctx->src_ip6[2];
		a[3] = ctx->src_ip6[3];
	} else {
		*(__u32 *)b->laddr = ctx->src_ip4;
	}
	net_port_range(net, &b->range_lo, &b->range_hi, false);
	return 1;
}

SEC("cgroup/post_bind4")
int handle_post_bind4(struct bpf_sock *ctx)
{
	return post_bind(ctx, false);
}

SEC("cgroup/post_bind6")
int handle_post_bind6(struct bpf_sock *ctx)
{
	return post_bind(ctx, true);
}

/*
 * The application let go of a socket (its last close(), or its exit). This
 * hook runs in inet_release() before the protocol's close: a TCP socket not
 * yet in CLOSE gives its port back later, at its CLOSE transition (or after
 * time-wait), which SKI_APP_CLOSED now allows. What is already closed, and
 * every UDP socket, gives its port back now. sock_release cannot read the
 * socket's addresses: the record carries what bind() stored, and user space
 * completes an autobound UDP socket's from what it saw of the same cookie.
 */
SEC("cgroup/sock_release")
int handle_sock_release(struct bpf_sock *ctx)
{
	struct task_struct *task;
	struct pt_rec_port *rec;
	struct sk_info *info;
	__u16 proto = ctx->protocol;
	__u16 family = ctx->family;
	__u64 cookie = 0;

	if (targ_hooks_only || targ_failures || !proto_wanted(proto) || !family_wanted(family))
		return 1;
	info = bpf_sk_storage_get(&sk_infos, ctx, 0, 0);
	if (proto == IPPROTO_TCP) {
		/* A listener older than tracing: its LISTEN -> CLOSE comes
		 * next, inside close(), before the socket is orphaned, and
		 * must know that the application let go of a bound port. */
		if (!info && ctx->state == TCP_LISTEN)
			info = bpf_sk_storage_get(&sk_infos, ctx, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (ctx->state == TCP_FIN_WAIT1 || ctx->state == TCP_FIN_WAIT2 ||
		    ctx->state == TCP_CLOSING) {
			/* The socket's pointer: what the state program has. */
			__u64 key = (__u64)ctx;
			__u32 tid = (__u32)bpf_get_current_pid_tgid();

			bpf_map_update_elem(&closing, &key, &tid, BPF_ANY);
		}
		if (!info) {
			/* Bound before tracing began and never connected:
			 * the snapshot told which, and its port goes back
			 * now. Asked only while there are such sockets. */
			if (!watch_prebound || ctx->state != TCP_CLOSE)
				return 1;
			cookie = bpf_get_socket_cookie(ctx);
			if (bpf_map_delete_elem(&prebound, &cookie))
				return 1;
		} else {
			info->flags |= SKI_APP_CLOSED;
		}
		/* Autobound TCP ports go back at CLOSE, bound ones at CLOSE
		 * once closed by the application: the transitions say when. */
		if (info && (!(info->flags & SKI_BOUND) || ctx->state != TCP_CLOSE))
			return 1;
	}
	if (targ_owner_filter && (!info || !owner_wanted(&info->owner)))
		return 1;
	if (info && (info->flags & SKI_BOUND)) {
		struct pt_sock *b = &info->bound;

		if (!port_wanted(b->lport, 0) ||
		    (targ_ephemeral && !in_range(b)))
			return 1;
	}

	rec = reserve(sizeof(*rec));
	if (!rec)
		return 1;
	__builtin_memset(rec, 0, sizeof(*rec));
	fill_hdr(&rec->hdr, PT_REC_PORT, sizeof(*rec));
	if (info) {
		rec->owner = info->owner;
		if (info->owner.pid)
			rec->flags |= PT_F_OWNER_KNOWN;
		if (info->flags & SKI_BOUND)
			rec->sk = info->bound;
	}
	rec->sk.cookie = cookie ? cookie : bpf_get_socket_cookie(ctx);
	rec->sk.family = family;
	rec->sk.proto = proto;
	rec->kind = PT_PORT_RELEASE;
	task = (void *)bpf_get_current_task();
	rec->reason = BPF_CORE_READ(task, flags) & PF_EXITING ? PT_REASON_EXIT : PT_REASON_SOCK_CLOSE;
	submit(rec);
	return 1;
}

/*
 * The socket behind a file descriptor of the current task, or NULL. The
 * hooks run at syscall entry, before the kernel has looked at the fd, and
 * accept()'s exit: any fd may come here, so a file that is not a socket
 * (its inode says so) is never read as one.
 */
static __always_inline struct sock *fd_sock(int fd)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file;
	struct socket *sock;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_core_read(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/*
 * Copy a sockaddr of addrlen bytes from the caller (user memory at a
 * syscall's entry, the kernel's copy in a kernel function); returns its
 * family, 0 if unusable. Only what the caller passed is read, and only an
 * address the kernel would take: inet_bind() and kin want a whole
 * sockaddr_in, and for IPv6 at least the 24 bytes of RFC 2133's (no scope
 * id).
 */
static __always_inline long read_addr(void *dst, __u32 size, const void *src, bool user)
{
	return user ? bpf_probe_read_user(dst, size, src) : bpf_probe_read_kernel(dst, size, src);
}

static __always_inline __u8 read_sockaddr(const void *uaddr, __u32 addrlen, struct call *c,
					  bool user)
{
	__u16 family = 0;

	if (!uaddr || addrlen < sizeof(family) || read_addr(&family, sizeof(family), uaddr, user))
		return 0;
	if (family == AF_INET && addrlen >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in sin = {};

		if (read_addr(&sin, sizeof(sin), uaddr, user))
			return 0;
		c->rport = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(c->addr, &sin.sin_addr, 4);
	} else if (family == AF_INET6 && addrlen >= 24) {
		struct sockaddr_in6 sin6 = {};

		if (read_addr(&sin6, 24, uaddr, user))
			return 0;
		c->rport = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(c->addr, &sin6.sin6_addr, 16);
	} else {
		return 0;
	}
	c->family = family;
	return family;
}

/* Keep a call until its exit hook; a full map (more threads inside these
 * calls than it holds) loses that call's record. */
static __always_inline void call_store(__u32 tid, const struct call *c)
{
	if (bpf_map_update_elem(&calls, &tid, c, BPF_ANY))
		count_lost();
}

/* Remember a call on an inet socket in flight, for the exit hook of its
 * kind; the thread's id is the key. */
static __always_inline void call_open(__u32 tid, struct sock *sk, const void *uaddr,
				      __u32 addrlen, bool user, __u8 kind)
{
	struct call c = {};
	__u16 family, proto;

	if (!sk)
		return;
	family = sk_family(sk, false);
	proto = sk_proto(sk, false);
	if (!family_wanted(family) || !proto_wanted(proto))
		return;
	c.sport = sk_sport(sk, false);
	/* sendto()/sendmsg() only matter when they may autobind. */
	if (kind == CALL_SEND && (proto != IPPROTO_UDP || c.sport))
		return;
	c.ts = bpf_ktime_get_ns();
	c.sk = (__u64)sk;
	c.kind = kind;
	read_sockaddr(uaddr, addrlen, &c, user);
	if (kind == CALL_BIND) {
		/* What was asked for, and the options in force when asked. */
		c.req_port = c.rport;
		c.rport = 0;
		c.opts = sock_opts(sk, false);
	}
	call_store(tid, &c);
}

/* call_open() at a syscall's entry, where only the fd names the socket. */
static __always_inline void call_begin(int fd, const void *uaddr, __u32 addrlen, __u8 kind)
{
	__u64 id = bpf_get_current_pid_tgid();

	/* The cheap test first: the fd walk is a chain of probe reads. */
	if (!current_wanted(id >> 32))
		return;
	call_open((__u32)id, fd_sock(fd), uaddr, addrlen, true, kind);
}

/* The call this exit hook is for (kinds: a mask); one of another kind is
 * dropped. */
static __always_inline bool call_end(struct call *out, __u8 kinds)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&calls, &tid);
	bool mine;

	if (!c)
		return false;
	mine = c->kind & kinds;
	if (mine)
		*out = *c;
	bpf_map_delete_elem(&calls, &tid);
	return mine;
}

/* The fields every port record of a syscall exit ends with; sends it. */
static __always_inline void finish_port(struct pt_rec_port *rec, const struct call *c, __u8 kind,
					int err, __u32 flags, __u8 opts)
{
	rec->kind = kind;
	rec->reason = PT_REASON_NONE;
	rec->opts = opts;
	rec->_pad = 0;
	rec->req_port = c->req_port;
	rec->_pad2 = 0;
	rec->err = err;
	rec->flags = flags | PT_F_OWNER_KNOWN;
	rec->latency_ns = rec->hdr.ts_ns - c->ts;
	submit(rec);
}

/* Emit a port record for a socket the current task just acted on. */
static __always_inline void emit_port(struct call *c, __u8 kind, int err, __u32 flags)
{
	struct sock *sk = (struct sock *)c->sk;
	struct pt_rec_port *rec;
	__u16 family = sk_family(sk, false);
	bool failure = kind == PT_PORT_BIND_FAIL || kind == PT_PORT_ALLOC_FAIL;

	if (targ_failures && !failure)
		return;
	rec = reserve(sizeof(*rec));
	if (!rec)
		return;
	fill_hdr(&rec->hdr, PT_REC_PORT, sizeof(*rec));
	fill_owner(&rec->owner);
	rec->sk.cookie = sk_cookie(sk);
	fill_sock(&rec->sk, sk, family, false);
	rec->sk._pad = 0;
	/* Failed calls leave the socket without a peer: report the one the
	 * caller asked for. */
	if ((kind == PT_PORT_ALLOC_FAIL || kind == PT_PORT_ALLOC || kind == PT_PORT_CONNECT) &&
	    c->family && !rec->sk.rport) {
		rec->sk.rport = c->rport;
		__builtin_memcpy(rec->sk.raddr, c->addr, 16);
	}
	/* A failed bind has no port of its own: show what was asked for. */
	if (kind == PT_PORT_BIND_FAIL) {
		rec->sk.lport = c->req_port;
		if (c->family == family)
			__builtin_memcpy(rec->sk.laddr, c->addr, 16);
		if (!c->req_port)
			flags |= PT_F_PORT_PENDING;
	}
	flags |= fill_range(&rec->sk, sk, sk_net(sk, false), false, true);
	/* A failure with no port yet (autobind found none) passes. */
	if ((targ_ephemeral && rec->sk.lport && !in_range(&rec->sk)) ||
	    !port_wanted(rec->sk.lport, rec->sk.rport)) {
		bpf_ringbuf_discard(rec, BPF_RB_NO_WAKEUP);
		return;
	}
	finish_port(rec, c, kind, err, flags, c->opts | sock_opts(sk, false));
}

/* emit_port() for a TCP connect() whose state hook left a snapshot: only
 * the port, chosen since, is read anew, and the filters run before the
 * ring is touched. */
static __always_inline void emit_snap(struct call *c, __u16 sport, __u8 kind, __u32 flags,
				      int err)
{
	struct pt_rec_port *rec;

	if (targ_failures)
		return;
	c->sock.lport = sport;
	if ((targ_ephemeral && !in_range(&c->sock)) || !port_wanted(sport, c->sock.rport))
		return;
	rec = reserve(sizeof(*rec));
	if (!rec)
		return;
	fill_hdr(&rec->hdr, PT_REC_PORT, sizeof(*rec));
	rec->owner = c->owner;
	rec->sk = c->sock;
	finish_port(rec, c, kind, err,
		    flags | c->snap_flags | reserved_flag((struct net *)c->snap_net, sport),
		    c->snap_opts);
}

/*
 * connect() of an inet socket begins. The cgroup hook runs in the caller's
 * context once the address is checked, for TCP and UDP alike, and hands over
 * the socket and the address as plain loads: sys_enter_connect had to walk
 * the fd table and copy the address from user memory with a dozen probe
 * reads, the dearest part of a traced connection. AF_UNSPEC (a disconnect)
 * never reaches it.
 */
static __always_inline int connect_begin(struct bpf_sock_addr *ctx, bool v6)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct bpf_sock *sk = ctx->sk;
	struct call c = {};

	if (!sk || !current_wanted(id >> 32) || !family_wanted(sk->family) ||
	    !proto_wanted(sk->protocol))
		return 1;
	/* A socket older than tracing has no cookie until something asks;
	 * the exit hook can only read it. */
	bpf_get_socket_cookie(ctx);
	c.ts = bpf_ktime_get_ns();
	c.sk = (__u64)sk;
	c.sport = sk->src_port;
	c.rport = bpf_ntohs((__u16)ctx->user_port);
	c.family = ctx->user_family;
	c.kind = CALL_CONNECT;
	if (v6) {
		__u32 *a = (void *)c.addr;

		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
	} else {
		*(__u32 *)c.addr = ctx->user_ip4;
	}
	call_store(tid, &c);
	return 1;
}

SEC("cgroup/connect4")
int handle_connect4(struct bpf_sock_addr *ctx)
{
	if (targ_hooks_only)
		return 1;
	return connect_begin(ctx, false);
}

SEC("cgroup/connect6")
int handle_connect6(struct bpf_sock_addr *ctx)
{
	if (targ_hooks_only)
		return 1;
	return connect_begin(ctx, true);
}

/* What a connect() (or a TCP Fast Open send, which connects) did, once it
 * returned ret. */
static __always_inline void connect_exit(struct call *c, long ret)
{
	struct sock *sk = (struct sock *)c->sk;
	__u16 sport = sk_sport(sk, false);
	__u8 kind = c->sport ? PT_PORT_CONNECT : PT_PORT_ALLOC;
	__u32 flags = c->sport ? 0 : PT_F_AUTOBIND;
	int err = ret >= 0 || ret == -EINPROGRESS ? 0 : -ret;

	if (!sport) {
		if (ret == -EADDRNOTAVAIL || ret == -EAGAIN)
			emit_port(c, PT_PORT_ALLOC_FAIL, -ret, PT_F_AUTOBIND | PT_F_PORT_PENDING);
		return;
	}
	/* A TCP connect() that failed after its port was picked (refused,
	 * timed out) took and gave it back inside the call: the transitions
	 * tell that story. So does a non-blocking one whose RST came back
	 * (over loopback) before it returned -EINPROGRESS. */
	if (sk_proto(sk, false) == IPPROTO_TCP &&
	    BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_CLOSE)
		return;
	/*
	 * The port is set once inet_hash_connect() or the UDP autobind has
	 * run. What decides an alloc is that the call picked one, whatever
	 * it returned: a blocking connect() cut short by a signal (-EINTR)
	 * keeps its port in SYN_SENT, and a UDP connect() that autobound
	 * before its route lookup failed keeps its port too. Its err says so.
	 * A socket that had its port already only says where it connected.
	 */
	if (c->sport && err)
		return;
	/* ERESTARTSYS and kin: user space sees EINTR, or a restart. */
	if (err >= 512 && err <= 516)
		err = EINTR;
	if (c->snap)
		emit_snap(c, sport, kind, flags, err);
	else
		emit_port(c, kind, err, flags);
}

/* A connect() returned ret. Only the connect hooks open a connect() call,
 * and a disconnect (AF_UNSPEC) never reaches them. */
static __always_inline void connect_done(long ret)
{
	struct call c;

	if (call_end(&c, CALL_CONNECT))
		connect_exit(&c, ret);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int handle_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	if (!targ_hooks_only)
		connect_done(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_bind")
int handle_enter_bind(struct trace_event_raw_sys_enter *ctx)
{
	if (targ_hooks_only)
		return 0;
	call_begin(ctx->args[0], (const void *)ctx->args[1], ctx->args[2], CALL_BIND);
	return 0;
}

/* A bind() returned ret: what it was granted, or why not. */
static __always_inline void bind_exit(int ret)
{
	struct call c;

	if (!call_end(&c, CALL_BIND) || c.family == 0)
		return;
	if (ret == 0)
		emit_port(&c, PT_PORT_BIND, 0, c.req_port ? 0 : PT_F_AUTOBIND);
	else
		emit_port(&c, PT_PORT_BIND_FAIL, -ret, c.req_port ? 0 : PT_F_AUTOBIND);
}

SEC("tracepoint/syscalls/sys_exit_bind")
int handle_exit_bind(struct trace_event_raw_sys_exit *ctx)
{
	if (!targ_hooks_only)
		bind_exit(ctx->ret);
	return 0;
}

/* UDP autobind happens in sendto()/sendmsg() of an unbound socket. */
static __always_inline void send_exit(long ret)
{
	struct call c;
	__u16 sport;

	/* TCP Fast Open connects inside sendto()/sendmsg(). */
	if (!call_end(&c, CALL_SEND | CALL_CONNECT))
		return;
	if (c.kind == CALL_CONNECT) {
		connect_exit(&c, ret);
		return;
	}
	sport = sk_sport((struct sock *)c.sk, false);
	if (sport)
		emit_port(&c, PT_PORT_ALLOC, 0, PT_F_AUTOBIND);
	else if (ret == -EAGAIN)
		emit_port(&c, PT_PORT_ALLOC_FAIL, EAGAIN, PT_F_AUTOBIND | PT_F_PORT_PENDING);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int handle_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	if (targ_hooks_only)
		return 0;
	call_begin(ctx->args[0], (const void *)ctx->args[4], ctx->args[5], CALL_SEND);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int handle_exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	if (targ_hooks_only)
		return 0;
	send_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int handle_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	struct user_msghdr msg = {};
	const struct user_msghdr *umsg = (const void *)ctx->args[1];

	if (targ_hooks_only)
		return 0;
	if (umsg)
		bpf_probe_read_user(&msg, sizeof(msg), umsg);
	call_begin(ctx->args[0], msg.msg_name, msg.msg_namelen, CALL_SEND);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int handle_exit_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	if (targ_hooks_only)
		return 0;
	send_exit(ctx->ret);
	return 0;
}

/*
 * accept() returned a socket: the process it returned in is the socket's
 * owner from now on (pre-fork servers bind in one process and accept in
 * others). Its port is its listener's; the record names the acceptor and
 * the connection, and user space carries the acceptor on by cookie.
 */
static __always_inline bool accept_wanted(long ret)
{
	return ret >= 0 && !targ_failures && (!targ_proto || targ_proto == IPPROTO_TCP) &&
	       current_wanted(bpf_get_current_pid_tgid() >> 32);
}

static __always_inline void accept_exit(struct sock *sk)
{
	struct pt_rec_port *rec;
	__u16 family;
	__u32 flags;

	if (!sk || sk_proto(sk, false) != IPPROTO_TCP)
		return;
	family = sk_family(sk, false);
	if (!family_wanted(family))
		return;
	rec = reserve(sizeof(*rec));
	if (!rec)
		return;
	fill_hdr(&rec->hdr, PT_REC_PORT, sizeof(*rec));
	fill_owner(&rec->owner);
	fill_sock(&rec->sk, sk, family, false);
	/* Made by the child's first transition, which asked for it. */
	rec->sk.cookie = sk_cookie(sk);
	rec->sk._pad = 0;
	/* The port is the listener's, whose listen event said what it means:
	 * the range is read only for the --ephemeral filter (bpf_stats: it
	 * was a fifth of this hook's 1 us). */
	rec->sk.range_lo = rec->sk.range_hi = 0;
	flags = targ_ephemeral ? fill_range(&rec->sk, sk, sk_net(sk, false), false, false) : 0;
	if ((targ_ephemeral && !in_range(&rec->sk)) ||
	    !port_wanted(rec->sk.lport, rec->sk.rport)) {
		bpf_ringbuf_discard(rec, BPF_RB_NO_WAKEUP);
		return;
	}
	if (targ_owner_filter) {
		__u64 key = (__u64)sk;

		bpf_map_update_elem(&adopt, &key, &rec->owner, BPF_ANY);
	}
	rec->kind = PT_PORT_ACCEPT;
	rec->reason = PT_REASON_NONE;
	rec->opts = 0;
	rec->_pad = 0;
	rec->req_port = 0;
	rec->_pad2 = 0;
	rec->err = 0;
	rec->flags = flags | PT_F_OWNER_KNOWN | PT_F_ACCEPTED;
	/* A peer's reset can close the child before accept() returns it:
	 * its CLOSE has gone by, so nothing will end what this starts. */
	if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_CLOSE)
		rec->flags |= PT_F_GONE;
	rec->latency_ns = 0;
	submit(rec);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int handle_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	if (!targ_hooks_only && accept_wanted(ctx->ret))
		accept_exit(fd_sock(ctx->ret));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int handle_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	if (!targ_hooks_only && accept_wanted(ctx->ret))
		accept_exit(fd_sock(ctx->ret));
	return 0;
}

/*
 * The same facts from the kernel functions behind the syscalls, where the
 * kernel lets fentry/fexit attach (user space probes it and loads either
 * these or the syscall tracepoints above, never both: they share the calls
 * map). A syscall tracepoint puts every syscall of every task on the traced
 * slow path; these cost only the calls they sit on. The socket and the
 * address come from the arguments, no fd walk, no copy from user memory.
 * Arguments are read by position with bpf_get_func_arg() (Linux 5.17,
 * commit f92c1e183604): inet_accept()'s changed from (sock, newsock, flags,
 * kern) to (sock, newsock, arg) in 6.10 (commit 92ef0fd55ac8), and only
 * the first ones are read.
 */
static __always_inline int fn_ret(void *ctx)
{
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	return (int)ret;
}

static __always_inline void *fn_arg(void *ctx, __u32 n)
{
	__u64 arg = 0;

	bpf_get_func_arg(ctx, n, &arg);
	return (void *)arg;
}

/* The struct sock of a struct socket argument. */
static __always_inline struct sock *fn_sock(void *ctx, __u32 n)
{
	struct socket *sock = fn_arg(ctx, n);

	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* connect() of TCP and of UDP: sock->ops->connect(sock, uaddr, len, flags).
 * A TCP Fast Open connect ends in inet_sendmsg() instead, as it does in
 * sendto(). */
SEC("?fexit/inet_stream_connect")
int fexit_stream_connect(void *ctx)
{
	if (!targ_hooks_only)
		connect_done(fn_ret(ctx));
	return 0;
}

SEC("?fexit/inet_dgram_connect")
int fexit_dgram_connect(void *ctx)
{
	if (!targ_hooks_only)
		connect_done(fn_ret(ctx));
	return 0;
}

/* bind(): sock->ops->bind(sock, uaddr, len), uaddr the kernel's copy. */
static __always_inline void bind_enter(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (current_wanted(id >> 32))
		call_open((__u32)id, fn_sock(ctx, 0), fn_arg(ctx, 1), (__u32)(__u64)fn_arg(ctx, 2),
			  false, CALL_BIND);
}

SEC("?fentry/inet_bind")
int fentry_bind(void *ctx)
{
	if (!targ_hooks_only)
		bind_enter(ctx);
	return 0;
}

SEC("?fexit/inet_bind")
int fexit_bind(void *ctx)
{
	if (!targ_hooks_only)
		bind_exit(fn_ret(ctx));
	return 0;
}

SEC("?fentry/inet6_bind")
int fentry_bind6(void *ctx)
{
	if (!targ_hooks_only)
		bind_enter(ctx);
	return 0;
}

SEC("?fexit/inet6_bind")
int fexit_bind6(void *ctx)
{
	if (!targ_hooks_only)
		bind_exit(fn_ret(ctx));
	return 0;
}

/*
 * Every send on an inet socket: sock->ops->sendmsg(sock, msg, len). The
 * UDP autobind happens in here (inet_send_prepare()) before udp_sendmsg()
 * runs, so udp_sendmsg() would find the port already set; and a TCP Fast
 * Open connect ends here, with what sendto() returns.
 */
static __always_inline void send_enter(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct msghdr *msg;

	if (!current_wanted(id >> 32))
		return;
	msg = fn_arg(ctx, 1);
	call_open((__u32)id, fn_sock(ctx, 0), BPF_CORE_READ(msg, msg_name),
		  BPF_CORE_READ(msg, msg_namelen), false, CALL_SEND);
}

SEC("?fentry/inet_sendmsg")
int fentry_sendmsg(void *ctx)
{
	if (!targ_hooks_only)
		send_enter(ctx);
	return 0;
}

SEC("?fexit/inet_sendmsg")
int fexit_sendmsg(void *ctx)
{
	if (!targ_hooks_only)
		send_exit(fn_ret(ctx));
	return 0;
}

SEC("?fentry/inet6_sendmsg")
int fentry_sendmsg6(void *ctx)
{
	if (!targ_hooks_only)
		send_enter(ctx);
	return 0;
}

SEC("?fexit/inet6_sendmsg")
int fexit_sendmsg6(void *ctx)
{
	if (!targ_hooks_only)
		send_exit(fn_ret(ctx));
	return 0;
}

/* accept(): sock->ops->accept(sock, newsock, ...), newsock grafted onto
 * the child once it returns 0. */
SEC("?fexit/inet_accept")
int fexit_accept(void *ctx)
{
	if (!targ_hooks_only && accept_wanted(fn_ret(ctx)))
		accept_exit(fn_sock(ctx, 1));
	return 0;
}
