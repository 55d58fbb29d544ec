/* get: downloads through a verified temporary file renamed into place only
 * when the digest matched. */
#define _GNU_SOURCE
#include "transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporary file a signal must not leave behind.  Set before the
 * handler may run and read only by it. */
static char get_cleanup_path[PATH_MAX];
static volatile sig_atomic_t get_cleanup_armed;

/* The one handler here that does more than set a flag: the loop may sit in
 * a blocking read, and a killed download must not litter the user's
 * directory.  unlink() and raise() are async-signal-safe; SA_RESETHAND
 * lets the raised signal end us with the usual status. */
static void get_on_signal(int sig)
{
	int saved = errno;

	if (get_cleanup_armed)
		(void)unlink(get_cleanup_path);
	(void)raise(sig);
	errno = saved;
}

static void get_install_cleanup(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = get_on_signal, .sa_flags = SA_RESETHAND };
	struct sigaction old;

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		/* An ignored signal (nohup) stays ignored.  Without the handler
		 * a signal merely leaves a temporary file behind. */
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			(void)sigaction(sigs[i], &sa, NULL);
	}
}

static void get_arm_cleanup(const char *path)
{
	size_t len = strlen(path);

	if (len >= sizeof(get_cleanup_path))
		return;
	memcpy(get_cleanup_path, path, len + 1);
	/* The handler must see the whole path once it sees the flag. */
	atomic_signal_fence(memory_order_seq_cst);
	get_cleanup_armed = 1;
}

struct get_file {
	const char *remote;
	char *dest;
	char *what;             /* "get REMOTE → DEST" */
	int out_fd;             /* stream destination, -1 for a temporary file */
	bool close_out;
	bool skip;              /* reported already: discard the body */
	struct client_stat_reply meta;
};

/* Receives size body bytes into fd (until writing fails) and digests
 * them.  A write error lands in *write_err and the rest of the body is
 * still read to stay in step.  Returns 0 with
 * *got set, 1 when the digest could not be computed, or a negative errno
 * (all but 0 reported, except a write error). */
static int get_receive(struct client *c, struct get_file *g, uint64_t size,
		       int fd, char *buf, struct digest_value *got, int *write_err)
{
	struct digest_ctx ctx;
	uint64_t left = size;
	int r;

	*write_err = 0;
	r = digest_init(&ctx, c->alg);
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", g->what, strerror(-r));
		c->gone = true;
		return r;
	}
	progress_begin(&c->progress, client_basename(g->remote), size);
	while (left > 0) {
		ssize_t n = linebuf_read(&c->lb, buf, left < CLIENT_CHUNK ? left : CLIENT_CHUNK);

		if (n <= 0) {
			r = n < 0 ? (int)n : -ECONNRESET;
			client_error_connection(c, g->what, n < 0 ? (int)n : 0);
			goto err_finish_ctx;
		}
		digest_update(&ctx, buf, (size_t)n);
		if (*write_err == 0)
			*write_err = write_full(fd, buf, (size_t)n);
		left -= (uint64_t)n;
		progress_update(&c->progress, size - left);
	}
	progress_end(&c->progress);
	r = digest_final(&ctx, got);
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: computing the digest: %s",
			     g->what, strerror(-r));
		return 1;
	}
	return 0;

err_finish_ctx:
	progress_end(&c->progress);
	digest_finish(&ctx);
	return r;
}

static void get_report_mismatch(struct client *c, const struct get_file *g,
				const struct digest_value *want,
				const struct digest_value *got, const char *outcome)
{
	char w[DIGEST_TEXT_MAX], h[DIGEST_TEXT_MAX];

	client_error(c, CLIENT_FAIL_PERMANENT,
		     "%s: DIGEST MISMATCH: server announced %s, received %s; %s", g->what,
		     client_digest_text(want, w, sizeof(w)),
		     client_digest_text(got, h, sizeof(h)), outcome);
}

/* Skips a body we do not keep, so the connection stays in step. */
static void get_discard(struct client *c, const struct get_file *g, uint64_t size)
{
	int r = linebuf_discard(&c->lb, size);

	if (r < 0)
		client_error_connection(c, g->what, r == -EPIPE ? 0 : r);
}

/* Writes straight into g->out_fd (stdout, a FIFO, a device). */
static void get_stream(struct client *c, struct get_file *g, uint64_t size,
		       const struct digest_value *want, char *buf)
{
	struct digest_value got;
	int werr, r;

	/* After a write error the rest of the body is still read (and
	 * dropped), so the connection stays in step for the next file. */
	r = get_receive(c, g, size, g->out_fd, buf, &got, &werr);
	if (r == 0 && werr) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: write: %s", g->what,
			     strerror(-werr));
		return;
	}
	if (r == 0 && !digest_equal(&got, want))
		get_report_mismatch(c, g, want, &got, "the output is damaged");
}

static char *get_temp_name(const char *dest)
{
	const char *slash = strrchr(dest, '/');
	const char *name = slash ? slash + 1 : dest;
	int dir_len = slash ? (int)(slash - dest + 1) : 0;
	char *tmpl;

	/* The name is cut so the temporary name stays within NAME_MAX. */
	if (asprintf(&tmpl, "%.*s.%.200s.tcpfile-XXXXXX", dir_len, dest, name) < 0)
		return NULL;
	return tmpl;
}

/* Makes the rename durable.  Returns 0 or -errno. */
static int get_sync_dir(const char *dest)
{
	const char *slash = strrchr(dest, '/');
	char *dir = slash ? strndup(dest, (size_t)(slash - dest + 1)) : strdup(".");
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	/* Some file systems cannot sync a directory; the rename stands. */
	if (fsync(fd) < 0 && errno != EINVAL)
		r = -errno;
	(void)close(fd);
	return r;
}

/* Gives the temporary file the remote mode and mtime, like cp -p, and
 * makes it durable.  Returns 0 or -errno. */
static int get_finish_temp(int fd, const struct client_stat_reply *meta)
{
	const struct timespec times[2] = {
		{ .tv_nsec = UTIME_OMIT },
		{ .tv_sec = (time_t)meta->mtime },
	};

	if (fchmod(fd, (mode_t)(meta->mode & 0777)) < 0)
		return -errno;
	if (futimens(fd, times) < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Receives into DIR/.NAME.tcpfile-XXXXXX and renames it over the
 * destination only once the digest matched. */
static void get_to_temp(struct client *c, struct get_file *g, uint64_t size,
			const struct digest_value *want, char *buf)
{
	struct digest_value got;
	char *tmp = get_temp_name(g->dest);
	int fd, werr, r;

	if (!tmp) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", g->what, strerror(ENOMEM));
		c->gone = true;
		return;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s: %s", g->what, tmp,
			     strerror(errno));
		get_discard(c, g, size);
		free(tmp);
		return;
	}
	get_arm_cleanup(tmp);

	r = get_receive(c, g, size, fd, buf, &got, &werr);
	if (r != 0)
		goto err_unlink;
	if (werr) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: write %s: %s", g->what, tmp,
			     strerror(-werr));
		goto err_unlink;
	}
	if (!digest_equal(&got, want)) {
		get_report_mismatch(c, g, want, &got, "nothing written");
		goto err_unlink;
	}
	r = get_finish_temp(fd, &g->meta);
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s: %s", g->what, tmp, strerror(-r));
		goto err_unlink;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s: %s", g->what, tmp,
			     strerror(errno));
		goto err_unlink;
	}
	if (rename(tmp, g->dest) < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", g->what, strerror(errno));
		goto err_unlink;
	}
	get_cleanup_armed = 0;
	r = get_sync_dir(g->dest);
	if (r < 0)
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: syncing the directory: %s",
			     g->what, strerror(-r));
	free(tmp);
	return;

err_unlink:
	if (fd >= 0)
		(void)close(fd);
	(void)unlink(tmp);
	get_cleanup_armed = 0;
	free(tmp);
}

/* Picks where the bytes go: a stream (stdout, or an existing FIFO or
 * device, which rename() must not replace) or a temporary file.  Returns
 * 0 or -1 (reported). */
static int get_open_dest(struct client *c, struct get_file *g)
{
	struct stat st;

	g->out_fd = -1;
	if (strcmp(g->dest, "-") == 0) {
		g->out_fd = STDOUT_FILENO;
		return 0;
	}
	if (stat(g->dest, &st) < 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
		return 0;
	g->out_fd = open(g->dest, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (g->out_fd < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", g->what, strerror(errno));
		return -1;
	}
	g->close_out = true;
	return 0;
}

/* Sends "STAT p" (for a file destination) and "GET p" together and reads
 * the STAT answer.  Returns 0 or a negative errno (reported): the
 * connection is gone, or the path too long and nothing was sent. */
static int get_request(struct client *c, struct get_file *g)
{
	char req[2 * (PROTO_MAX_LINE + 1)];
	char alg[CLIENT_ALG_ARG_MAX];
	const char *args = client_alg_arg(c, alg, sizeof(alg));
	struct proto_status st;
	size_t len = 0;
	int r;

	if (g->out_fd < 0) {
		r = client_format_request(req, sizeof(req), "STAT", g->remote, NULL);
		if (r < 0)
			goto err_path;
		len = (size_t)r;
	}
	r = client_format_request(req + len, sizeof(req) - len, "GET", g->remote, args);
	if (r < 0)
		goto err_path;
	r = client_send(c, g->what, req, len + (size_t)r);
	if (r < 0 || g->out_fd >= 0)
		return r;

	r = client_read_status(c, g->what, &st);
	if (r < 0)
		return r;
	if (!st.ok) {
		client_error_status(c, g->what, &st);
		g->skip = true;
		/* 421/426: the server closes without reading the GET. */
		if (c->gone)
			return -ECONNRESET;
	} else if (client_parse_stat(st.text, &g->meta) < 0) {
		return client_error_reply(c, g->what, st.text);
	} else if (g->meta.type != 'f') {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", g->what,
			     g->meta.type == 'd' ? "is a directory" : "not a regular file");
		g->skip = true;
	}
	return 0;

err_path:
	client_error(c, CLIENT_FAIL_PERMANENT, "%s: remote path too long", g->what);
	return r;
}

static void get_one(struct client *c, struct get_file *g, char *buf)
{
	struct proto_status st;
	struct digest_value want;
	uint64_t size;
	int r;

	if (get_open_dest(c, g) < 0)
		return;
	r = get_request(c, g);
	if (r < 0)
		return;
	r = client_read_status(c, g->what, &st);
	if (r < 0)
		return;
	if (!st.ok) {
		/* After a failed STAT the GET fails alike: say it once. */
		if (g->skip)
			client_note_status(c, &st);
		else
			client_error_status(c, g->what, &st);
		return;
	}
	if (client_parse_size_digest(st.text, &size, &want) < 0 || want.alg != c->alg) {
		(void)client_error_reply(c, g->what, st.text);
		return;
	}
	if (g->skip) {
		get_discard(c, g, size);
		return;
	}
	if (g->out_fd >= 0)
		get_stream(c, g, size, &want, buf);
	else
		get_to_temp(c, g, size, &want, buf);
}

static int get_file_init(struct get_file *g, const char *remote,
			 const char *local, bool local_is_dir)
{
	char what[CLIENT_WHAT_MAX];
	size_t len = strlen(local);
	int r;

	*g = (struct get_file){ .remote = remote, .out_fd = -1 };
	if (local_is_dir)
		r = asprintf(&g->dest, "%s%s%s", local,
			     len && local[len - 1] == '/' ? "" : "/",
			     client_basename(remote));
	else
		r = (g->dest = strdup(local)) ? 0 : -1;
	if (r < 0) {
		g->dest = NULL;
		return -ENOMEM;
	}
	g->what = strdup(client_what(what, sizeof(what), "get", remote, g->dest));
	if (!g->what)
		return -ENOMEM;
	return 0;
}

static void get_file_finish(struct get_file *g)
{
	if (g->close_out)
		(void)close(g->out_fd);
	free(g->dest);
	free(g->what);
}

void transfer_get(struct client *c, char *const *remotes, size_t n,
		  const char *local, bool local_is_dir)
{
	char *buf = malloc(CLIENT_CHUNK);
	size_t i;

	if (!buf) {
		client_error(c, CLIENT_FAIL_PERMANENT, "get: %s", strerror(ENOMEM));
		return;
	}
	get_install_cleanup();
	for (i = 0; i < n && !c->gone; i++) {
		struct get_file g;

		if (get_file_init(&g, remotes[i], local, local_is_dir) < 0) {
			client_error(c, CLIENT_FAIL_PERMANENT, "get: %s", strerror(ENOMEM));
			get_file_finish(&g);
			break;
		}
		get_one(c, &g, buf);
		get_file_finish(&g);
	}
	if (i < n)
		client_error(c, c->closing ? CLIENT_FAIL_TEMPORARY : CLIENT_FAIL_PROTOCOL,
			     "get: %zu more file%s not received", n - i, n - i == 1 ? "" : "s");
	free(buf);
}
