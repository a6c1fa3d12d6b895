// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "fixtures.h"

int collect_event(void *ctx, const struct pt_event *ev)
{
	struct collect *c = ctx;

	if (c->n < MAX_COLLECT)
		c->ev[c->n++] = *ev;
	return 0;
}

struct pt_owner owner_of(__u32 pid, __u64 start_ns, const char *comm)
{
	struct pt_owner o = {.pid = pid, .tid = pid, .start_ns = start_ns, .cgroup_id = 42};

	strncpy(o.comm, comm, sizeof(o.comm) - 1);
	return o;
}

struct pt_sock sock4(__u64 cookie, __u8 proto, const char *laddr, __u16 lport, const char *raddr,
		     __u16 rport)
{
	struct pt_sock s = {.cookie = cookie, .netns = 4026531840u, .family = AF_INET,
			    .proto = proto, .lport = lport, .rport = rport,
			    .range_lo = 40000, .range_hi = 40003};

	inet_pton(AF_INET, laddr, s.laddr);
	inet_pton(AF_INET, raddr, s.raddr);
	return s;
}

struct pt_sock sock6(__u64 cookie, const char *laddr, __u16 lport, const char *raddr, __u16 rport)
{
	struct pt_sock s = {.cookie = cookie, .netns = 4026531840u, .family = AF_INET6,
			    .proto = IPPROTO_TCP, .lport = lport, .rport = rport,
			    .range_lo = 32768, .range_hi = 60999};

	inet_pton(AF_INET6, laddr, s.laddr);
	inet_pton(AF_INET6, raddr, s.raddr);
	return s;
}

struct pt_rec_state rec_state(__u64 ts, struct pt_owner o, struct pt_sock sk, __u8 old, __u8 new_,
			      __u32 flags)
{
	struct pt_rec_state r = {
		.hdr = {.type = PT_REC_STATE, .size = sizeof(r), .ts_ns = ts},
		.owner = o, .sk = sk, .oldstate = old, .newstate = new_,
		.flags = flags | PT_F_OWNER_KNOWN,
	};

	return r;
}

struct pt_rec_port rec_port(__u64 ts, struct pt_owner o, struct pt_sock sk, __u8 kind, __s32 err)
{
	struct pt_rec_port r = {
		.hdr = {.type = PT_REC_PORT, .size = sizeof(r), .ts_ns = ts},
		.owner = o, .sk = sk, .kind = kind, .err = err, .flags = PT_F_OWNER_KNOWN,
	};

	return r;
}

struct pt_event ev_state(__u64 ts, struct pt_owner o, struct pt_sock sk, __u8 old, __u8 new_)
{
	struct pt_event e = {.type = PT_EV_STATE, .ts_ns = ts, .owner = o, .sk = sk,
			     .oldstate = old, .newstate = new_, .flags = PT_F_OWNER_KNOWN};

	if (!sk.lport)
		e.flags |= PT_F_PORT_PENDING;
	return e;
}

struct pt_event ev_port(__u64 ts, struct pt_owner o, struct pt_sock sk, __u8 kind, __u8 reason)
{
	struct pt_event e = {.type = PT_EV_PORT, .ts_ns = ts, .owner = o, .sk = sk, .kind = kind,
			     .reason = reason, .flags = PT_F_OWNER_KNOWN};

	return e;
}

const char *format_event(const struct pt_event *ev, enum output_format fmt, __u64 base_ns)
{
	static char buf[4096];
	int fd = memfd_create("out", 0);
	struct output *o = output__new(fd, "memfd", fmt, base_ns);
	ssize_t n;

	output__event(o, ev);
	output__free(o);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}
