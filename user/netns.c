// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include "netns.h"
#include "options.h"

#define RESCAN_NS 1000000000ULL

struct netns_name {
	__u32 inode;
	char name[NAME_MAX + 1];
};

struct netns {
	struct netns_name *v;
	size_t n;
	unsigned long long scanned_ns;
};

static unsigned long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

struct netns *netns__new(void)
{
	struct netns *n = calloc(1, sizeof(*n));

	if (n && !(n->v = calloc(NETNS_NAMES_MAX, sizeof(*n->v)))) {
		free(n);
		return NULL;
	}
	return n;
}

void netns__free(struct netns *n)
{
	if (!n)
		return;
	free(n->v);
	free(n);
}

static void scan(struct netns *n)
{
	DIR *d = opendir(NETNS_DIR);
	struct dirent *de;

	n->n = 0;
	n->scanned_ns = mono_ns();
	if (!d)
		return;
	while ((de = readdir(d)) && n->n < NETNS_NAMES_MAX) {
		char path[PATH_MAX];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), NETNS_DIR "/%s", de->d_name);
		/* The bind mount's inode is the namespace's; a file of its
		 * own (the namespace was deleted) is on tmpfs, so no match. */
		if (stat(path, &st))
			continue;
		n->v[n->n].inode = st.st_ino;
		snprintf(n->v[n->n].name, sizeof(n->v[n->n].name), "%s", de->d_name);
		n->n++;
	}
	closedir(d);
}

const char *netns__name(struct netns *n, __u32 inode)
{
	for (int pass = 0; n && pass < 2; pass++) {
		for (size_t i = 0; i < n->n; i++)
			if (n->v[i].inode == inode)
				return n->v[i].name;
		if (pass || (n->scanned_ns && mono_ns() - n->scanned_ns < RESCAN_NS))
			break;
		scan(n);
	}
	return NULL;
}

int netns__parse(const char *arg, __u32 *inode)
{
	char path[PATH_MAX];
	unsigned long v;
	struct stat st;
	int fd, type, err;

	if (!options__parse_ulong(arg, 1, 0xffffffffUL, &v)) {
		*inode = v;
		return 0;
	}
	if (!*arg || strchr(arg, '/'))
		snprintf(path, sizeof(path), "%s", arg);
	else if (snprintf(path, sizeof(path), NETNS_DIR "/%s", arg) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Only a namespace file answers NS_GET_NSTYPE. */
	type = ioctl(fd, NS_GET_NSTYPE);
	err = type < 0 ? -errno : type != CLONE_NEWNET ? -EINVAL : fstat(fd, &st) ? -errno : 0;
	close(fd);
	if (err == -ENOTTY)
		err = -EINVAL;
	if (!err)
		*inode = st.st_ino;
	return err;
}
