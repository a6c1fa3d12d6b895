// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "slab.h"

#define CHUNK_SIZE (256 * 1024)

struct chunk {
	struct chunk *next;
};

struct slab {
	size_t size;		/* an object's, rounded up to 16 bytes */
	struct chunk *chunks;
	char *bump, *end;	/* the newest chunk's unused part */
	void *free;		/* freed objects, linked through their first word */
};

struct slab *slab__new(size_t obj_size)
{
	struct slab *s = calloc(1, sizeof(*s));

	if (s)
		s->size = (obj_size + 15) & ~(size_t)15;
	return s;
}

void *slab__zalloc(struct slab *s)
{
	void *obj = s->free;
	struct chunk *c;

	if (obj) {
		s->free = *(void **)obj;
		return memset(obj, 0, s->size);
	}
	if (s->end - s->bump < (ptrdiff_t)s->size) {
		/* Populated at once: the pages are written right away anyway. */
		c = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (c == MAP_FAILED)
			return NULL;
		c->next = s->chunks;
		s->chunks = c;
		s->bump = (char *)c + 16;
		s->end = (char *)c + CHUNK_SIZE;
	}
	/* Fresh mappings are zero. */
	obj = s->bump;
	s->bump += s->size;
	return obj;
}

void slab__free(struct slab *s, void *obj)
{
	if (!obj)
		return;
	*(void **)obj = s->free;
	s->free = obj;
}

void slab__destroy(struct slab *s)
{
	if (!s)
		return;
	while (s->chunks) {
		struct chunk *c = s->chunks;

		s->chunks = c->next;
		munmap(c, CHUNK_SIZE);
	}
	free(s);
}
