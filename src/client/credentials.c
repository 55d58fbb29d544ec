/* credentials: where tcpfile's password comes from: $TCPFILE_PASSWORD, the
 * user's credentials file, or a prompt on the terminal with echo off. */
#include "credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "client.h"
#include "netio.h"

void credentials_free(char *password)
{
	if (!password)
		return;
	explicit_bzero(password, strlen(password));
	free(password);
}

int credentials_path(char *buf, size_t cap)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(buf, cap, "%s/%s", xdg, CREDENTIALS_FILE_NAME);
	else if (home && *home)
		n = snprintf(buf, cap, "%s/.config/%s", home, CREDENTIALS_FILE_NAME);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* ---- the file ---- */

static bool credentials_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Splits off the next blank-separated field of [*p, end). */
static bool credentials_field(const char **p, const char *end, const char **field,
			      size_t *len)
{
	const char *s = *p;

	while (s < end && credentials_blank(*s))
		s++;
	*field = s;
	while (s < end && !credentials_blank(*s))
		s++;
	*len = (size_t)(s - *field);
	*p = s;
	return *len > 0;
}

/* One line, without its LF.  Returns 1 with *password on a match, 0 for
 * no match (or a comment), -EINVAL when malformed, -ENOMEM. */
static int credentials_line(const char *p, const char *end, const struct client_server *srv,
			    const char *user, char **password)
{
	struct client_server want;
	const char *host, *name;
	size_t host_len, name_len;
	char spec[sizeof(want.host) + 16];

	while (p < end && credentials_blank(*p))
		p++;
	if (p == end || *p == '#')
		return 0;
	if (end > p && end[-1] == '\r')
		end--;
	if (!credentials_field(&p, end, &host, &host_len) ||
	    !credentials_field(&p, end, &name, &name_len))
		return -EINVAL;
	while (p < end && credentials_blank(*p))
		p++;
	if (p == end || host_len >= sizeof(spec))
		return -EINVAL;
	memcpy(spec, host, host_len);
	spec[host_len] = '\0';
	if (strstr(spec, "://") || client_server_parse(spec, &want) < 0)
		return -EINVAL;
	if (strcasecmp(want.host, srv->host) != 0 ||
	    (want.port_given && strcmp(want.port, srv->port) != 0) ||
	    strlen(user) != name_len || memcmp(user, name, name_len) != 0)
		return 0;
	if ((size_t)(end - p) > CREDENTIALS_PASSWORD_MAX)
		return -EINVAL;
	*password = strndup(p, (size_t)(end - p));
	return *password ? 1 : -ENOMEM;
}

int credentials_lookup(const char *text, size_t len, const struct client_server *srv,
		       const char *user, char **password, unsigned *bad_line)
{
	const char *p = text, *end = text + len;
	unsigned line = 0;
	int r;

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *eol = lf ? lf : end;

		line++;
		r = credentials_line(p, eol, srv, user, password);
		if (r == -EINVAL)
			*bad_line = line;
		if (r != 0)
			return r;
		p = lf ? lf + 1 : end;
	}
	return 0;
}

int credentials_read(const char *path, const struct client_server *srv, const char *user,
		     char **password, char *err, size_t errlen)
{
	unsigned bad_line = 0;
	struct stat st;
	char *text;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		if (r != -ENOENT)
			snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		goto err_close_fd;
	}
	r = -EPERM;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto err_close_fd;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: refused: owned by uid %u, not by you",
			 path, (unsigned)st.st_uid);
		goto err_close_fd;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s: refused: group or others may access it "
			 "(mode %04o); chmod 600 it", path, (unsigned)(st.st_mode & 07777));
		goto err_close_fd;
	}
	if (st.st_size > CREDENTIALS_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, CREDENTIALS_FILE_MAX);
		r = -EFBIG;
		goto err_close_fd;
	}
	text = malloc(CREDENTIALS_FILE_MAX + 1);
	if (!text) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto err_close_fd;
	}
	/* One byte more than allowed tells a file that grew meanwhile. */
	n = read_full(fd, text, CREDENTIALS_FILE_MAX + 1);
	if (n < 0 || n > CREDENTIALS_FILE_MAX) {
		r = n < 0 ? (int)n : -EFBIG;
		snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(-r) : "too large");
	} else {
		r = credentials_lookup(text, (size_t)n, srv, user, password, &bad_line);
		if (r == -EINVAL)
			snprintf(err, errlen, "%s:%u: malformed: want HOST[:PORT] USER PASSWORD",
				 path, bad_line);
		else if (r < 0)
			snprintf(err, errlen, "%s: %s", path, strerror(-r));
	}
	explicit_bzero(text, CREDENTIALS_FILE_MAX + 1);
	free(text);

err_close_fd:
	(void)close(fd);
	return r;
}

/* ---- the prompt ---- */

/* What a signal handler needs to put the terminal back. */
static int credentials_tty = -1;
static struct termios credentials_saved, credentials_quiet;

static const int credentials_signals[] = {
	SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU,
};
#define CREDENTIALS_NSIGNALS (sizeof(credentials_signals) / sizeof(credentials_signals[0]))

/* Restores the terminal and takes the signal's default action at once
 * (unblocked): a terminating signal ends the process with the echo back
 * on; a stop signal stops it, and when it continues, echo goes off again.
 * Only async-signal-safe calls. */
static void credentials_on_signal(int sig)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL }, self;
	int saved = errno;
	sigset_t set;

	(void)tcsetattr(credentials_tty, TCSANOW, &credentials_saved);
	sigemptyset(&dfl.sa_mask);
	(void)sigaction(sig, &dfl, &self);
	sigemptyset(&set);
	sigaddset(&set, sig);
	(void)sigprocmask(SIG_UNBLOCK, &set, NULL);
	(void)raise(sig);
	/* Continued after a stop. */
	(void)sigaction(sig, &self, NULL);
	(void)tcsetattr(credentials_tty, TCSANOW, &credentials_quiet);
	errno = saved;
}

/* Reads one line (the LF dropped) into buf[cap].  Returns its length,
 * -ENODATA at end of file before an LF, -EMSGSIZE or -errno. */
static ssize_t credentials_read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;
	char ch;

	for (;;) {
		/* A byte at a time: nothing past the line may be consumed. */
		r = read_full(fd, &ch, 1);
		if (r < 0)
			return r;
		if (r == 0)
			return -ENODATA;
		if (ch == '\n')
			break;
		if (n == cap) {
			/* Swallow the rest of the line so it is not left to the
			 * shell. */
			while ((r = read_full(fd, &ch, 1)) == 1 && ch != '\n')
				;
			return -EMSGSIZE;
		}
		buf[n++] = ch;
	}
	return (ssize_t)n;
}

int credentials_prompt(int tty_fd, const char *prompt, char **password)
{
	struct sigaction act = { .sa_handler = credentials_on_signal };
	struct sigaction old[CREDENTIALS_NSIGNALS];
	char buf[CREDENTIALS_PASSWORD_MAX];
	ssize_t n;
	int r;

	if (tcgetattr(tty_fd, &credentials_saved) < 0)
		return -errno;
	credentials_quiet = credentials_saved;
	credentials_quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	credentials_quiet.c_lflag |= ICANON;
	credentials_tty = tty_fd;
	sigemptyset(&act.sa_mask);
	for (size_t i = 0; i < CREDENTIALS_NSIGNALS; i++)
		(void)sigaction(credentials_signals[i], &act, &old[i]);

	r = write_full(tty_fd, prompt, strlen(prompt));
	if (r == 0 && tcsetattr(tty_fd, TCSAFLUSH, &credentials_quiet) < 0)
		r = -errno;
	n = r < 0 ? r : credentials_read_line(tty_fd, buf, sizeof(buf));
	(void)tcsetattr(tty_fd, TCSAFLUSH, &credentials_saved);
	for (size_t i = 0; i < CREDENTIALS_NSIGNALS; i++)
		(void)sigaction(credentials_signals[i], &old[i], NULL);
	credentials_tty = -1;
	/* The newline the user typed was not echoed. */
	(void)write_full(tty_fd, "\n", 1);

	if (n == 0)
		n = -ENODATA;
	if (n > 0) {
		*password = strndup(buf, (size_t)n);
		n = *password ? 0 : -ENOMEM;
	}
	explicit_bzero(buf, sizeof(buf));
	return (int)n;
}

/* ---- the chain ---- */

/* $TCPFILE_PASSWORD, copied and then wiped where it was. */
static int credentials_from_env(char **password)
{
	char *value = getenv(CLIENT_PASSWORD_ENV);

	if (!value || !*value)
		return 0;
	*password = strdup(value);
	explicit_bzero(value, strlen(value));
	(void)unsetenv(CLIENT_PASSWORD_ENV);
	return *password ? 1 : -ENOMEM;
}

int credentials_get(const struct client_server *srv, const char *user, char **password,
		    char *err, size_t errlen)
{
	char path[4096] = "", prompt[sizeof(srv->display) + 256];
	int fd, r;

	*password = NULL;
	r = credentials_from_env(password);
	if (r != 0) {
		if (r < 0)
			snprintf(err, errlen, "%s", strerror(-r));
		return r < 0 ? r : 0;
	}
	r = credentials_path(path, sizeof(path));
	if (r == 0) {
		r = credentials_read(path, srv, user, password, err, errlen);
		if (r == 1)
			return 0;
		if (r < 0 && r != -ENOENT)
			return r;
	}
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "no password: set $%s, add a line for %s to %s, or run "
			 "tcpfile on a terminal", CLIENT_PASSWORD_ENV, srv->display,
			 path[0] ? path : "~/.config/" CREDENTIALS_FILE_NAME);
		return -ENOKEY;
	}
	snprintf(prompt, sizeof(prompt), "Password for %.128s at %s: ", user, srv->display);
	r = credentials_prompt(fd, prompt, password);
	(void)close(fd);
	if (r < 0)
		snprintf(err, errlen, "password from the terminal: %s",
			 r == -ENODATA ? "none given" : r == -EMSGSIZE ? "too long" :
			 strerror(-r));
	return r;
}
