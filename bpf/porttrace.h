/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * porttrace wire contract: the only header shared by the BPF programs and
 * user space. Everything here crosses the ring buffer, so it uses fixed-width
 * types only, has no bit-fields and no pointers, and every struct is padded
 * by hand to a multiple of 8 bytes.
 *
 * Byte order: every port in a record is in HOST byte order (the BPF side
 * converts); every address is in network byte order, as the kernel keeps it.
 * Times are CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns()).
 *
 * Every record starts with struct pt_hdr. The decoder checks hdr.size
 * against the size it expects for hdr.type before it reads any other field.
 */
#ifndef PORTTRACE_H
#define PORTTRACE_H

#ifdef __BPF__
/* vmlinux.h already provides the __u* types. */
#else
#include <linux/types.h>
#endif

#define PT_TASK_COMM_LEN 16
#define PT_ANON_ID (1ULL << 63)

enum pt_rec_type {
	PT_REC_STATE = 1, /* TCP state transition (sock:inet_sock_set_state) */
	PT_REC_PORT = 2,  /* a port fact: bind, alloc, failure, listen, release */
};

/* What a PT_REC_PORT record says happened to the port. */
enum pt_port_kind {
	PT_PORT_BIND = 1,	/* explicit bind() succeeded */
	PT_PORT_BIND_FAIL,	/* explicit bind() failed; err says why */
	PT_PORT_ALLOC,		/* kernel chose a port: connect()/sendto() autobind */
	PT_PORT_ALLOC_FAIL,	/* autobind found no port (EADDRNOTAVAIL, EAGAIN) */
	PT_PORT_CONNECT,	/* connect() of a socket that already had a port */
	PT_PORT_LISTEN,		/* socket now receives on the port */
	PT_PORT_RELEASE,	/* port given back to the kernel */
	PT_PORT_TIMEWAIT,	/* port kept by a time-wait socket */
	PT_PORT_EXISTING,	/* user space: held before tracing began (sock_diag) */
	PT_PORT_ACCEPT,		/* accept() returned this socket: its owner from now */
	PT_PORT_KIND_MAX,
};

/* Why a port was released (PT_PORT_RELEASE) or a transition ended a socket. */
enum pt_reason {
	PT_REASON_NONE = 0,
	PT_REASON_CLOSE,	/* orderly close, FIN handshake done */
	PT_REASON_RST_SENT,	/* we aborted: SO_LINGER 0, close with unread data */
	PT_REASON_RST_RECV,	/* the peer reset the connection */
	PT_REASON_REFUSED,	/* active open refused */
	PT_REASON_TIMEOUT,	/* retransmissions or keepalives gave up */
	PT_REASON_SOCK_CLOSE,	/* the socket itself was released: close() */
	PT_REASON_EXIT,		/* released while its process was exiting */
	PT_REASON_TW_EXPIRED,	/* time-wait period over (computed, user space) */
	PT_REASON_NO_PORT,	/* connect() found no free port: nothing was sent */
	PT_REASON_TW_GONE,	/* time-wait socket gone before its time, as a
				 * check found (user space): a RST in
				 * TIME-WAIT killed it, or none was made */
	PT_REASON_DISCONNECT,	/* UDP connect(AF_UNSPEC) gave an autobound port
				 * back; found at the socket's next port (user
				 * space), as no hook sees the disconnect */
	PT_REASON_UNREACHABLE,	/* an ICMP error ended it (host or network
				 * unreachable), at once or when retries gave up */
	PT_REASON_ERROR,	/* any other socket error ended it */
	PT_REASON_MAX,
};

/* Socket options that change allocation, as set at bind/connect time. */
#define PT_OPT_REUSEADDR	(1u << 0)
#define PT_OPT_REUSEPORT	(1u << 1)
#define PT_OPT_BIND_NO_PORT	(1u << 2)	/* IP_BIND_ADDRESS_NO_PORT */
#define PT_OPT_BOUND_PORT	(1u << 3)	/* SOCK_BINDPORT_LOCK: port pinned by bind() */

/* Flags on a record. */
#define PT_F_OWNER_KNOWN	(1u << 0) /* owner came from a hook in its context */
#define PT_F_PORT_PENDING	(1u << 1) /* local port not allocated yet */
#define PT_F_RELEASE		(1u << 2) /* STATE: this transition released the port */
#define PT_F_TIMEWAIT		(1u << 3) /* STATE: port now held by a time-wait sock */
#define PT_F_RANGE_SOCK		(1u << 4) /* range is the socket's IP_LOCAL_PORT_RANGE */
#define PT_F_RESERVED		(1u << 5) /* port is in ip_local_reserved_ports */
#define PT_F_AUTOBIND		(1u << 6) /* port was picked by the kernel */
#define PT_F_COMPUTED		(1u << 7) /* set by user space: time derived, not seen */
#define PT_F_FOLDED_SYNRECV	(1u << 8) /* STATE: LISTEN -> SYN_RECV at folded_ns came first */
#define PT_F_ACCEPTED		(1u << 9) /* the socket was accepted from a listener: its
					   * port is the listener's, and a time-wait
					   * socket it leaves holds that port */
#define PT_F_HELD		(1u << 10) /* user space: a bind-fail says what held the port */
#define PT_F_GONE		(1u << 11) /* ACCEPT: the socket had closed already (a reset
					   * before accept()): its CLOSE went by */

struct pt_hdr {
	__u16 type;	/* enum pt_rec_type */
	__u16 size;	/* whole record, header included */
	__u32 cpu;
	__u64 ts_ns;
};

/* Who owns the socket: remembered in the owner's context, carried by socket. */
struct pt_owner {
	__u32 pid;		/* tgid; 0 = unknown */
	__u32 tid;
	__u64 start_ns;		/* process start time: pid + start = identity */
	__u64 cgroup_id;
	char comm[PT_TASK_COMM_LEN];	/* the process's name (thread group leader's) */
	char thread[PT_TASK_COMM_LEN];	/* the name of thread tid */
};

struct pt_sock {
	__u64 cookie;		/* socket cookie; 0 = socket older than tracing;
				 * PT_ANON_ID bit set: an identity porttrace
				 * made up where the kernel had none to give.
				 * Never a kernel address. */
	__u32 netns;		/* network namespace inode number */
	__u8 family;		/* AF_INET / AF_INET6 */
	__u8 proto;		/* IPPROTO_TCP / IPPROTO_UDP */
	__u16 lport;		/* host order */
	__u16 rport;		/* host order */
	__u16 range_lo;		/* ephemeral range in force for this socket */
	__u16 range_hi;
	__u16 _pad;
	__u8 laddr[16];		/* AF_INET: first 4 bytes */
	__u8 raddr[16];
};

struct pt_rec_state {
	struct pt_hdr hdr;
	struct pt_owner owner;
	struct pt_sock sk;
	__u8 oldstate;		/* kernel TCP_* numbers */
	__u8 newstate;
	__u8 reason;		/* enum pt_reason, when newstate is CLOSE */
	__u8 opts;		/* PT_OPT_* */
	__u32 flags;		/* PT_F_* */
	__u64 folded_ns;	/* PT_F_FOLDED_SYNRECV: when the child was made */
};

struct pt_rec_port {
	struct pt_hdr hdr;
	struct pt_owner owner;
	struct pt_sock sk;
	__u8 kind;		/* enum pt_port_kind */
	__u8 reason;		/* enum pt_reason */
	__u8 opts;		/* PT_OPT_* */
	__u8 _pad;
	__u16 req_port;		/* bind(): port asked for, host order */
	__u16 _pad2;
	__s32 err;		/* positive errno, 0 on success */
	__u32 flags;		/* PT_F_* */
	__u64 latency_ns;	/* connect(): cgroup connect hook to return */
};

/* The decoder checks sizes against these; a change here is a change of the
 * wire contract, and both sides must see it. */
_Static_assert(sizeof(struct pt_hdr) == 16, "pt_hdr size");
_Static_assert(sizeof(struct pt_owner) == 56, "pt_owner size");
_Static_assert(sizeof(struct pt_sock) == 56, "pt_sock size");
_Static_assert(sizeof(struct pt_rec_state) == 144, "pt_rec_state size");
_Static_assert(sizeof(struct pt_rec_port) == 152, "pt_rec_port size");

#endif /* PORTTRACE_H */
