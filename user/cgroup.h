/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * cgroup: who a cgroup id is, in the words people use. Every event carries
 * the cgroup v2 id of its owner (bpf_get_current_cgroup_id(): the inode
 * number of the cgroup's directory in the v2 hierarchy). It is resolved to
 * the directory's path under the v2 mount, and the path to a systemd unit,
 * a container id with its runtime (docker, containerd/CRI, cri-o, podman)
 * and a Kubernetes pod UID, where the path says so.
 *
 * Lookups are cached, at most CGROUP_CACHE_MAX cgroups; a full cache starts
 * over, so memory is bounded whatever churns. A cgroup removed before its
 * first lookup resolves to nothing (its id alone is still in the event).
 */
#ifndef PT_CGROUP_H
#define PT_CGROUP_H

#include <stdbool.h>
#include <linux/types.h>

#define CGROUP_CACHE_MAX 4096
#define CGROUP_PATH_MAX 512

struct cgroup_ident {
	char path[CGROUP_PATH_MAX];	/* under the v2 mount, "/" first; "" unknown */
	char unit[128];			/* "nginx.service"; "" when none */
	char runtime[16];		/* "docker", "containerd", "cri-o", "podman", "cri" */
	char container[65];		/* 64 hex digits; "" when none */
	char pod[40];			/* Kubernetes pod UID, with dashes; "" when none */
	char name[160];			/* for people: the unit, or "docker:0123456789ab";
					 * as the path has it: escape before showing */
};

struct cgroups;

/* Finds the cgroup v2 mount in /proc/self/mounts; NULL (errno set) when
 * there is none or memory is short. */
struct cgroups *cgroups__new(void);
void cgroups__free(struct cgroups *c);

/* Where cgroup v2 is mounted (found in /proc/self/mounts, never assumed:
 * /sys/fs/cgroup on most hosts, /sys/fs/cgroup/unified on hybrid ones);
 * 0 or -errno. */
int cgroup__mount(char *dir, size_t cap);

/* What id is, or NULL when unknown (0, gone, or not a v2 cgroup). Valid
 * until the next lookup. */
const struct cgroup_ident *cgroups__lookup(struct cgroups *c, __u64 id);

/* The id (directory inode) of a cgroup given by its path, either absolute
 * (under the v2 mount) or relative to the mount, and its depth (the root is
 * 0); 0 or -errno. */
int cgroups__id(struct cgroups *c, const char *path, __u64 *id, __u32 *level);

/* Whether process pid is in the subtree of cgroup id, at depth level (as
 * /proc/PID/cgroup says now); false when that cannot be read. */
bool cgroups__pid_under(struct cgroups *c, __u32 pid, __u64 id, __u32 level);

/* The identity a path (relative to the v2 mount) names; no I/O, so the
 * rules can be checked without cgroups. */
void cgroup__parse_path(const char *path, struct cgroup_ident *out);

#endif /* PT_CGROUP_H */
