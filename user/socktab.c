// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Open addressing with linear probing and backward-shift deletion, so that
 * millions of put/take pairs leave no tombstones behind.
 */
#include <stdlib.h>
#include <string.h>
#include "socktab.h"

struct socktab {
	struct socktab_entry *slots;	/* cookie 0 marks an empty slot */
	unsigned int mask;
	unsigned int count;
	unsigned int max_entries;
};

static unsigned int slot_of(const struct socktab *t, __u64 cookie)
{
	/* Cookies are sequential; mix them so neighbours spread out. */
	cookie *= 0x9e3779b97f4a7c15ULL;
	return (unsigned int)(cookie >> 32) & t->mask;
}

static bool grow(struct socktab *t)
{
	unsigned int old_size = t->mask + 1, new_size = old_size * 2;
	struct socktab_entry *old = t->slots, *slots;

	slots = calloc(new_size, sizeof(*slots));
	if (!slots)
		return false;
	t->slots = slots;
	t->mask = new_size - 1;
	for (unsigned int i = 0; i < old_size; i++) {
		unsigned int s;

		if (!old[i].cookie)
			continue;
		for (s = slot_of(t, old[i].cookie); t->slots[s].cookie; s = (s + 1) & t->mask)
			;
		t->slots[s] = old[i];
	}
	free(old);
	return true;
}

struct socktab *socktab__new(unsigned int max_entries)
{
	struct socktab *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->slots = calloc(1024, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return NULL;
	}
	t->mask = 1023;
	t->max_entries = max_entries;
	return t;
}

void socktab__free(struct socktab *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t);
}

bool socktab__put(struct socktab *t, const struct pt_sock *sk, const struct pt_owner *owner)
{
	unsigned int s;

	if (!sk->cookie)
		return false;
	for (s = slot_of(t, sk->cookie); t->slots[s].cookie; s = (s + 1) & t->mask) {
		if (t->slots[s].cookie == sk->cookie)
			goto store;
	}
	if (t->count >= t->max_entries)
		return false;
	/* Keep the load under one half so probes stay short. */
	if ((t->count + 1) * 2 > t->mask + 1) {
		if (!grow(t))
			return false;
		for (s = slot_of(t, sk->cookie); t->slots[s].cookie; s = (s + 1) & t->mask)
			;
	}
	t->count++;
store:
	t->slots[s].cookie = sk->cookie;
	t->slots[s].sk = *sk;
	t->slots[s].owner = *owner;
	return true;
}

bool socktab__take(struct socktab *t, __u64 cookie, struct socktab_entry *out)
{
	unsigned int s, next;

	if (!cookie)
		return false;
	for (s = slot_of(t, cookie); t->slots[s].cookie; s = (s + 1) & t->mask) {
		if (t->slots[s].cookie == cookie)
			break;
	}
	if (!t->slots[s].cookie)
		return false;
	*out = t->slots[s];
	/* Backward shift: pull later members of the probe run into the hole. */
	for (next = (s + 1) & t->mask; t->slots[next].cookie; next = (next + 1) & t->mask) {
		unsigned int home = slot_of(t, t->slots[next].cookie);

		if (((next - home) & t->mask) >= ((next - s) & t->mask)) {
			t->slots[s] = t->slots[next];
			s = next;
		}
	}
	t->slots[s].cookie = 0;
	t->count--;
	return true;
}

unsigned int socktab__count(const struct socktab *t)
{
	return t->count;
}
