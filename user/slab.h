/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * slab: objects of one size, carved from chunks that are populated when
 * mapped. A burst of new destinations would otherwise fault in a page per
 * few objects, one trap each; here a chunk costs one call. Freed objects
 * are reused first, so memory follows the most ever held at once.
 */
#ifndef PT_SLAB_H
#define PT_SLAB_H

#include <stddef.h>

struct slab;

struct slab *slab__new(size_t obj_size);
/* A zeroed object, or NULL when out of memory. */
void *slab__zalloc(struct slab *s);
/* obj (from this slab, or NULL) is free for reuse. */
void slab__free(struct slab *s, void *obj);
/* Every chunk unmapped: the objects are all gone. */
void slab__destroy(struct slab *s);

#endif /* PT_SLAB_H */
