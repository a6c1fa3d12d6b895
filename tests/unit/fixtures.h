/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Synthetic records and events, and a collector of what consumers get. */
#ifndef PT_FIXTURES_H
#define PT_FIXTURES_H

#include "event.h"
#include "output.h"

#define MAX_COLLECT 64

struct collect {
	struct pt_event ev[MAX_COLLECT];
	int n;
};

int collect_event(void *ctx, const struct pt_event *ev);

struct pt_owner owner_of(__u32 pid, __u64 start_ns, const char *comm);
struct pt_sock sock4(__u64 cookie, __u8 proto, const char *laddr, __u16 lport, const char *raddr,
		     __u16 rport);
struct pt_sock sock6(__u64 cookie, const char *laddr, __u16 lport, const char *raddr, __u16 rport);
struct pt_rec_state rec_state(__u64 ts, struct pt_owner o, struct pt_sock sk, __u8 old, __u8 new_,
			      __u32 flags);
struct pt_rec_port rec_port(__u64 ts, struct pt_owner o, struct pt_sock sk, __u8 kind, __s32 err);
struct pt_event ev_state(__u64 ts, struct pt_owner o, struct pt_sock sk, __u8 old, __u8 new_);
struct pt_event ev_port(__u64 ts, struct pt_owner o, struct pt_sock sk, __u8 kind, __u8 reason);

/* Format one event (or header when ev is NULL) as fmt; returns a static buffer. */
const char *format_event(const struct pt_event *ev, enum output_format fmt, __u64 base_ns);

#endif /* PT_FIXTURES_H */
