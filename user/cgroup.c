// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * A cgroup id is found by file handle first: cgroup v2 is kernfs, whose
 * handles (FILEID_KERNFS) are the 64-bit node id, the same number
 * bpf_get_current_cgroup_id() gives; open_by_handle_at() then names the
 * directory in one call. Where that is refused (no CAP_DAC_READ_SEARCH in a
 * user namespace), the hierarchy is walked for the directory whose inode is
 * the id.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cgroup.h"
#include "socktab.h"

#define FILEID_KERNFS 0xfe	/* include/linux/exportfs.h */
#define WALK_DEPTH 32

struct cgroup_entry {
	__u64 id;
	struct cgroup_ident ident;
	bool known;
};

struct cgroups {
	char mount[PATH_MAX];
	size_t mount_len;
	int mount_fd;
	struct socktab *idx;		/* id -> index into entries */
	struct cgroup_entry *entries;	/* CGROUP_CACHE_MAX */
	unsigned int n;
};

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && !memcmp(s + n - k, suffix, k);
}

static void copy(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* A pod UID as the path spells it: "pod<uid>" (cgroupfs driver) or
 * "kubepods-<qos>-pod<uid with '_'>.slice" (systemd driver). */
static bool parse_pod(const char *c, size_t n, struct cgroup_ident *out)
{
	const char *p = NULL;
	size_t len;

	if (n > 3 && !memcmp(c, "pod", 3))
		p = c + 3;
	for (size_t i = 0; !p && i + 4 <= n; i++)
		if (!memcmp(c + i, "-pod", 4))
			p = c + i + 4;
	if (!p)
		return false;
	len = c + n - p;
	if (ends_with(p, len, ".slice"))
		len -= 6;
	if (len != 36)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = p[i];

		if (ch == '_' || ch == '-')
			continue;
		if (!is_hex(&ch, 1))
			return false;
	}
	copy(out->pod, sizeof(out->pod), p, len);
	for (char *s = out->pod; *s; s++)
		if (*s == '_')
			*s = '-';
	return true;
}

/* A container's own cgroup: "<prefix><64 hex>[.scope]", or the 64 hex
 * digits alone (cgroupfs drivers), whose runtime the parent says. */
static bool parse_container(const char *c, size_t n, const char *parent, size_t pn,
			    struct cgroup_ident *out)
{
	static const struct {
		const char *prefix, *runtime;
	} prefixes[] = {
		{"docker-", "docker"},
		{"cri-containerd-", "containerd"},
		{"crio-", "cri-o"},
		{"libpod-", "podman"},
		{"", NULL},
	};

	if (ends_with(c, n, ".scope"))
		n -= 6;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t k = strlen(prefixes[i].prefix);
		const char *rt = prefixes[i].runtime;

		if (n != k + 64 || memcmp(c, prefixes[i].prefix, k) || !is_hex(c + k, 64))
			continue;
		if (!rt) {
			if (pn == 6 && !memcmp(parent, "docker", 6))
				rt = "docker";
			else if (pn >= 6 && !memcmp(parent, "libpod", 6))
				rt = "podman";
			else
				rt = out->pod[0] ? "cri" : "container";
		}
		copy(out->container, sizeof(out->container), c + k, 64);
		copy(out->runtime, sizeof(out->runtime), rt, strlen(rt));
		return true;
	}
	return false;
}

void cgroup__parse_path(const char *path, struct cgroup_ident *out)
{
	const char *c = path, *parent = "";
	size_t pn = 0;

	memset(out, 0, sizeof(*out));
	copy(out->path, sizeof(out->path), path, strlen(path));
	while (*c) {
		size_t n;

		while (*c == '/')
			c++;
		n = strcspn(c, "/");
		if (!n)
			break;
		if (!parse_pod(c, n, out) && !parse_container(c, n, parent, pn, out) &&
		    (ends_with(c, n, ".service") || ends_with(c, n, ".scope")))
			copy(out->unit, sizeof(out->unit), c, n);
		parent = c;
		pn = n;
		c += n;
	}
	if (out->container[0])
		snprintf(out->name, sizeof(out->name), "%s:%.12s", out->runtime, out->container);
	else if (out->unit[0])
		snprintf(out->name, sizeof(out->name), "%s", out->unit);
	else if (strcmp(path, "/"))
		snprintf(out->name, sizeof(out->name), "%s", path);
}

int cgroup__mount(char *dir, size_t cap)
{
	struct mntent *m;
	FILE *f = setmntent("/proc/self/mounts", "r");
	int err = -ENOENT;

	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (!strcmp(m->mnt_type, "cgroup2")) {
			err = strlen(m->mnt_dir) < cap ? 0 : -ENAMETOOLONG;
			if (!err)
				strcpy(dir, m->mnt_dir);
			break;
		}
	}
	endmntent(f);
	return err;
}

struct cgroups *cgroups__new(void)
{
	struct cgroups *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return NULL;
	c->mount_fd = -1;
	err = cgroup__mount(c->mount, sizeof(c->mount));
	if (err) {
		free(c);
		errno = -err;
		return NULL;
	}
	c->mount_len = strlen(c->mount);
	/* "/" as the mount: paths under it start right after. */
	if (c->mount_len == 1)
		c->mount_len = 0;
	c->mount_fd = open(c->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c->idx = socktab__new(CGROUP_CACHE_MAX, sizeof(unsigned int));
	c->entries = calloc(CGROUP_CACHE_MAX, sizeof(*c->entries));
	if (c->mount_fd < 0 || !c->idx || !c->entries) {
		err = errno ? errno : ENOMEM;
		cgroups__free(c);
		errno = err;
		return NULL;
	}
	return c;
}

void cgroups__free(struct cgroups *c)
{
	if (!c)
		return;
	if (c->mount_fd >= 0)
		close(c->mount_fd);
	socktab__free(c->idx);
	free(c->entries);
	free(c);
}

/* The path of an absolute name under the mount, "/" first; false when
 * it is not under it. */
static bool relative(const struct cgroups *c, const char *abs, char *out, size_t cap)
{
	const char *rest = abs + c->mount_len;

	if (strncmp(abs, c->mount, c->mount_len) || (*rest && *rest != '/'))
		return false;
	copy(out, cap, *rest ? rest : "/", *rest ? strlen(rest) : 1);
	return true;
}

/* 0, or -errno: -ESTALE when no such cgroup exists (any more). */
static int by_handle(struct cgroups *c, __u64 id, char *out, size_t cap)
{
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + sizeof(__u64)];
	} h;
	char link[64], abs[PATH_MAX];
	ssize_t n;
	int fd;

	h.fh.handle_bytes = sizeof(id);
	h.fh.handle_type = FILEID_KERNFS;
	memcpy(h.fh.f_handle, &id, sizeof(id));
	fd = open_by_handle_at(c->mount_fd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, abs, sizeof(abs) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	abs[n] = '\0';
	return relative(c, abs, out, cap) ? 0 : -EXDEV;
}

/* Depth-first through the hierarchy, by directory inode. */
static bool walk(int dfd, const char *rel, __u64 id, int depth, char *out, size_t cap)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	bool found = false;

	if (!d) {
		close(dfd);
		return false;
	}
	while (!found && (de = readdir(d))) {
		char sub[CGROUP_PATH_MAX];
		int fd;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name) >= (int)sizeof(sub))
			continue;
		if (de->d_ino == id) {
			copy(out, cap, sub, strlen(sub));
			found = true;
		} else if (depth < WALK_DEPTH &&
			   (fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
			found = walk(fd, sub, id, depth + 1, out, cap);
		}
	}
	closedir(d);
	return found;
}

static bool resolve(struct cgroups *c, __u64 id, char *out, size_t cap)
{
	struct stat st;
	int fd, err = by_handle(c, id, out, cap);

	/* Gone (a container that came and went) or elsewhere: walking would
	 * find nothing either, at the cost of the whole tree. */
	if (!err)
		return true;
	if (err == -ESTALE || err == -ENOENT || err == -EXDEV)
		return false;
	if (!fstat(c->mount_fd, &st) && st.st_ino == id) {
		copy(out, cap, "/", 1);
		return true;
	}
	fd = openat(c->mount_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 && walk(fd, "", id, 0, out, cap);
}

const struct cgroup_ident *cgroups__lookup(struct cgroups *c, __u64 id)
{
	unsigned int *slot, i;
	struct cgroup_entry *e;
	char path[CGROUP_PATH_MAX];

	if (!c || !id)
		return NULL;
	slot = socktab__get(c->idx, id);
	if (slot)
		return c->entries[*slot].known ? &c->entries[*slot].ident : NULL;
	if (c->n == CGROUP_CACHE_MAX) {
		/* Full: start over rather than grow. */
		socktab__free(c->idx);
		c->idx = socktab__new(CGROUP_CACHE_MAX, sizeof(unsigned int));
		c->n = 0;
		if (!c->idx)
			return NULL;
	}
	i = c->n;
	e = &c->entries[i];
	e->id = id;
	/* An id that does not resolve is remembered too: cgroup ids are
	 * never reused, so the answer stays the same. */
	e->known = resolve(c, id, path, sizeof(path));
	if (e->known)
		cgroup__parse_path(path, &e->ident);
	if (socktab__put(c->idx, id, &i))
		c->n++;
	return e->known ? &e->ident : NULL;
}

bool cgroups__pid_under(struct cgroups *c, __u32 pid, __u64 id, __u32 level)
{
	char path[64], line[CGROUP_PATH_MAX + 8], *p;
	bool under = false;
	struct stat st;
	FILE *f;

	if (!c)
		return false;
	snprintf(path, sizeof(path), "/proc/%u/cgroup", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!under && fgets(line, sizeof(line), f)) {
		char abs[PATH_MAX];
		__u32 depth = 0;

		/* The v2 line is "0::/path". */
		if (strncmp(line, "0::/", 4))
			continue;
		line[strcspn(line, "\n")] = '\0';
		/* Its ancestor at level: the path cut after level components. */
		for (p = line + 3; *p && depth <= level; p++)
			if (*p == '/' && ++depth > level)
				break;
		if (depth < level)
			break;
		*p = '\0';
		if (snprintf(abs, sizeof(abs), "%s%s", c->mount, line + 3) >= (int)sizeof(abs))
			break;
		under = !stat(abs, &st) && st.st_ino == id;
	}
	fclose(f);
	return under;
}

int cgroups__id(struct cgroups *c, const char *path, __u64 *id, __u32 *level)
{
	char abs[PATH_MAX], real[PATH_MAX], rel[CGROUP_PATH_MAX];
	struct stat st;
	__u32 depth = 0;

	if (path[0] == '/' && !strncmp(path, c->mount, c->mount_len) &&
	    (!path[c->mount_len] || path[c->mount_len] == '/'))
		snprintf(abs, sizeof(abs), "%s", path);
	else if (snprintf(abs, sizeof(abs), "%s/%s", c->mount, path[0] == '/' ? path + 1 : path) >=
		 (int)sizeof(abs))
		return -ENAMETOOLONG;
	if (stat(abs, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* "..", "." and symbolic links would miscount the depth. */
	if (!realpath(abs, real) || !relative(c, real, rel, sizeof(rel)))
		return -EXDEV;
	for (const char *p = rel; *p; p++)
		depth += p[0] == '/' && p[1] && p[1] != '/';
	*id = st.st_ino;
	*level = depth;
	return 0;
}
