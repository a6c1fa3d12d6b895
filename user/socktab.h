/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * socktab: a map from socket cookie to a fixed-size value. The decoder
 * keeps what it saw of sockets whose release record (cgroup/sock_release)
 * cannot carry their addresses; timelines find a socket's hold by cookie.
 */
#ifndef PT_SOCKTAB_H
#define PT_SOCKTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct socktab;

/* max_entries bounds memory: a full table stops taking new cookies. */
struct socktab *socktab__new(unsigned int max_entries, size_t val_size);
void socktab__free(struct socktab *t);
/* Insert or replace; false when the table is full or cookie is 0. */
bool socktab__put(struct socktab *t, __u64 cookie, const void *val);
/* The value stored for cookie, valid until the next put or take; or NULL. */
void *socktab__get(struct socktab *t, __u64 cookie);
/* Copy the value for cookie into out (may be NULL) and forget it. */
bool socktab__take(struct socktab *t, __u64 cookie, void *out);
unsigned int socktab__count(const struct socktab *t);

#endif /* PT_SOCKTAB_H */
