/* confboard: the configuration text a reload validated, published in
 * shared memory so that workers of older generations apply it to their
 * connections at the next request. */
#pragma once

#include <stddef.h>

/* Largest configuration text that can be published; a larger one still
 * reloads (new workers get it through fork), but connections in flight
 * then keep their settings until they end. */
#define CONFBOARD_TEXT_MAX (1024 * 1024)

struct confboard;

/* A shared anonymous mapping that survives fork; NULL on failure (errno).
 * Untouched pages cost no memory. */
struct confboard *confboard_new(void);
void confboard_free(struct confboard *b);

/* Master side: publishes text (len bytes) as generation gen.
 * Returns 0 or -EFBIG (too large: the board then says "none"). */
int confboard_publish(struct confboard *b, unsigned gen, const char *text, size_t len);

/* Worker side: the generation last published (0: none yet). */
unsigned confboard_generation(const struct confboard *b);
/* Copies the published text (NUL-terminated, malloc'ed) and its
 * generation, consistently even while the master publishes.  Returns 0,
 * -ENODATA (nothing published, or too large) or -ENOMEM. */
int confboard_read(const struct confboard *b, char **text, unsigned *gen);

/* Reads a configuration file whole (at most CONFBOARD_TEXT_MAX bytes
 * plus one), NUL-terminated, for config_load_string().  Returns 0, -EFBIG
 * or -errno. */
int confboard_read_file(const char *path, char **text, size_t *len);
