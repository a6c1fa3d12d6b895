// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Open addressing with linear probing and backward-shift deletion, so that
 * millions of put/take pairs leave no tombstones behind. Cookies live in
 * their own array (0 = empty); values in a parallel one.
 */
#include <stdlib.h>
#include <string.h>
#include "socktab.h"

struct socktab {
	__u64 *keys;
	unsigned char *vals;
	size_t val_size;
	unsigned int mask;
	unsigned int count;
	unsigned int max_entries;
};

static unsigned int slot_of(unsigned int mask, __u64 cookie)
{
	/* Cookies are sequential; mix them so neighbours spread out. */
	cookie *= 0x9e3779b97f4a7c15ULL;
	return (unsigned int)(cookie >> 32) & mask;
}

static void *val_at(const struct socktab *t, unsigned int s)
{
	return t->vals + (size_t)s * t->val_size;
}

/* The slot holding cookie, or the empty slot ending its probe run. */
static unsigned int find(const struct socktab *t, __u64 cookie)
{
	unsigned int s = slot_of(t->mask, cookie);

	while (t->keys[s] && t->keys[s] != cookie)
		s = (s + 1) & t->mask;
	return s;
}

static bool resize(struct socktab *t, unsigned int size)
{
	struct socktab old = *t;

	t->keys = calloc(size, sizeof(*t->keys));
	t->vals = malloc((size_t)size * t->val_size);
	if (!t->keys || !t->vals) {
		free(t->keys);
		free(t->vals);
		t->keys = old.keys;
		t->vals = old.vals;
		return false;
	}
	t->mask = size - 1;
	for (unsigned int i = 0; old.keys && i <= old.mask; i++) {
		unsigned int s;

		if (!old.keys[i])
			continue;
		s = find(t, old.keys[i]);
		t->keys[s] = old.keys[i];
		memcpy(val_at(t, s), val_at(&old, i), t->val_size);
	}
	free(old.keys);
	free(old.vals);
	return true;
}

struct socktab *socktab__new(unsigned int max_entries, size_t val_size)
{
	struct socktab *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->val_size = val_size;
	t->max_entries = max_entries;
	if (!resize(t, 1024)) {
		free(t);
		return NULL;
	}
	return t;
}

void socktab__free(struct socktab *t)
{
	if (!t)
		return;
	free(t->keys);
	free(t->vals);
	free(t);
}

bool socktab__put(struct socktab *t, __u64 cookie, const void *val)
{
	unsigned int s;

	if (!cookie)
		return false;
	s = find(t, cookie);
	if (!t->keys[s]) {
		if (t->count >= t->max_entries)
			return false;
		/* Keep the load under one half so probe runs stay short. */
		if ((t->count + 1) * 2 > t->mask + 1) {
			if (!resize(t, (t->mask + 1) * 2))
				return false;
			s = find(t, cookie);
		}
		t->keys[s] = cookie;
		t->count++;
	}
	memcpy(val_at(t, s), val, t->val_size);
	return true;
}

void *socktab__get(struct socktab *t, __u64 cookie)
{
	unsigned int s;

	if (!cookie)
		return NULL;
	s = find(t, cookie);
	return t->keys[s] ? val_at(t, s) : NULL;
}

bool socktab__take(struct socktab *t, __u64 cookie, void *out)
{
	unsigned int s, next;

	if (!cookie)
		return false;
	s = find(t, cookie);
	if (!t->keys[s])
		return false;
	if (out)
		memcpy(out, val_at(t, s), t->val_size);
	/* Backward shift: pull later members of the probe run into the hole. */
	for (next = (s + 1) & t->mask; t->keys[next]; next = (next + 1) & t->mask) {
		unsigned int home = slot_of(t->mask, t->keys[next]);

		if (((next - home) & t->mask) >= ((next - s) & t->mask)) {
			t->keys[s] = t->keys[next];
			memcpy(val_at(t, s), val_at(t, next), t->val_size);
			s = next;
		}
	}
	t->keys[s] = 0;
	t->count--;
	return true;
}

unsigned int socktab__count(const struct socktab *t)
{
	return t->count;
}
