/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * CO-RE shims for kernel fields that changed type between releases.
 * Each shim says which kernel change it bridges; both sides are kept so one
 * object loads on every kernel porttrace supports.
 */
#ifndef PT_CORE_FIXES_BPF_H
#define PT_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/*
 * net->ipv4.ip_local_ports.range: up to Linux 6.7 it was "int range[2]"
 * guarded by a seqlock; commit d9f28735af89 ("inet: lockless access to
 * ip_local_ports.range") and its follow-up turned it into one u32, low in the
 * low half and high in the high half.
 */
struct local_ports___old {
	int range[2];
} __attribute__((preserve_access_index));

struct netns_ipv4___old {
	struct local_ports___old ip_local_ports;
} __attribute__((preserve_access_index));

struct net___old {
	struct netns_ipv4___old ipv4;
} __attribute__((preserve_access_index));

/* direct: net is a typed (BTF) pointer, read with plain loads; otherwise
 * a raw one, read with bpf_probe_read_kernel(). */
static __always_inline void net_port_range(struct net *net, __u16 *lo, __u16 *hi, bool direct)
{
	struct net___old *old = (void *)net;

	/* An existence check that cannot resolve answers 0; a size check on
	 * an incompatible type poisons the program instead. So ask whether the
	 * old layout is there, and keep the new one in the other branch. */
	if (bpf_core_field_exists(old->ipv4.ip_local_ports.range)) {
		int r[2] = {};

		/* Read without the seqlock: a torn read during a sysctl
		 * write is possible and harmless for a label. */
		bpf_core_read(&r, sizeof(r), &old->ipv4.ip_local_ports.range);
		*lo = r[0];
		*hi = r[1];
	} else {
		__u32 r = direct ? net->ipv4.ip_local_ports.range
				 : BPF_CORE_READ(net, ipv4.ip_local_ports.range);

		*lo = r & 0xffff;
		*hi = r >> 16;
	}
}

/*
 * inet_sock->local_port_range (IP_LOCAL_PORT_RANGE, Linux 6.3, commit
 * 91d0b78c5177 "inet: Add IP_LOCAL_PORT_RANGE socket option") started as
 * struct { u16 lo; u16 hi; } and became one u32 (hi << 16 | lo); both read
 * the same as four bytes on a little-endian host. Missing before 6.3.
 */
static __always_inline __u32 sock_port_range(struct sock *sk)
{
	struct inet_sock *inet = (void *)sk;
	__u32 r = 0;

	if (!bpf_core_field_exists(inet->local_port_range))
		return 0;
	bpf_core_read(&r, sizeof(r), &inet->local_port_range);
	return r;
}

/*
 * IP_BIND_ADDRESS_NO_PORT: a bit-field "bind_address_no_port:1" in
 * struct inet_sock until Linux 6.6 moved it into inet->inet_flags
 * (commit ca571e2eb7eb "inet: move inet->bind_address_no_port to inet->inet_flags").
 */
struct inet_sock___old {
	__u8 bind_address_no_port: 1;
} __attribute__((preserve_access_index));

static __always_inline bool sock_bind_no_port(struct sock *sk)
{
	if (bpf_core_field_exists(struct inet_sock___old, bind_address_no_port)) {
		struct inet_sock___old *old = (void *)sk;

		return BPF_CORE_READ_BITFIELD_PROBED(old, bind_address_no_port);
	}
	if (bpf_core_field_exists(((struct inet_sock *)sk)->inet_flags)) {
		/* INET_FLAGS_BIND_ADDRESS_NO_PORT lives in an anonymous enum,
		 * which CO-RE cannot look up by name; it has been bit 18 since
		 * the move. */
		unsigned long flags = BPF_CORE_READ((struct inet_sock *)sk, inet_flags);

		return (flags >> 18) & 1;
	}
	return false;
}

#endif /* PT_CORE_FIXES_BPF_H */
