/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * socktab: what was last seen of each socket that holds a port until it is
 * released, keyed by socket cookie. cgroup/sock_release cannot read a
 * socket's addresses, so its release record is completed from here.
 */
#ifndef PT_SOCKTAB_H
#define PT_SOCKTAB_H

#include <stdbool.h>
#include "porttrace.h"

struct socktab;

struct socktab_entry {
	__u64 cookie;
	struct pt_sock sk;
	struct pt_owner owner;
};

/* max_entries bounds memory: a full table stops remembering new sockets. */
struct socktab *socktab__new(unsigned int max_entries);
void socktab__free(struct socktab *t);
/* Insert or replace; false when the table is full. */
bool socktab__put(struct socktab *t, const struct pt_sock *sk, const struct pt_owner *owner);
/* Copy the entry for cookie into *out and forget it; false when absent. */
bool socktab__take(struct socktab *t, __u64 cookie, struct socktab_entry *out);
unsigned int socktab__count(const struct socktab *t);

#endif /* PT_SOCKTAB_H */
