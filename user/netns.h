/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * netns: network namespaces as people name them. Every event carries its
 * namespace's inode number; "ip netns" names (bind mounts under
 * /run/netns) are found for it where they exist. A namespace with no name
 * goes by its inode.
 */
#ifndef PT_NETNS_H
#define PT_NETNS_H

#include <linux/types.h>

#define NETNS_DIR "/run/netns"
#define NETNS_NAMES_MAX 1024	/* names remembered; more are not named */

struct netns;

struct netns *netns__new(void);
void netns__free(struct netns *n);

/* The "ip netns" name of inode, or NULL. The names are read again, at
 * most once a second, when an inode is not among them. */
const char *netns__name(struct netns *n, __u32 inode);

/* A namespace given as an inode number, a path (/proc/PID/ns/net,
 * /run/netns/NAME) or an "ip netns" name; 0 or -errno (-EINVAL: the
 * file is no network namespace). */
int netns__parse(const char *arg, __u32 *inode);

#endif /* PT_NETNS_H */
