/* credentials: where tcpfile's password comes from: $TCPFILE_PASSWORD, the
 * user's credentials file, or a prompt on the terminal with echo off. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct client_server;

#define CREDENTIALS_FILE_NAME    "tcpfile/credentials"
#define CREDENTIALS_PASSWORD_MAX 1024          /* bytes of one password */
#define CREDENTIALS_FILE_MAX     (64 * 1024)   /* a bigger file is refused */
#define CREDENTIALS_ERROR_MAX    768

/* ${XDG_CONFIG_HOME:-$HOME/.config}/tcpfile/credentials into buf (an
 * XDG_CONFIG_HOME that is not absolute is ignored, as the XDG spec says).
 * Returns 0, -ENOENT (no HOME either) or -ENAMETOOLONG. */
int credentials_path(char *buf, size_t cap);

/* Looks user at srv up in a credentials file's text[0..len): lines
 * "HOST[:PORT] USER PASSWORD" (fields split by blanks; PASSWORD is the rest
 * of the line, blanks included, without a final CR), blank lines and lines
 * starting with '#' skipped.  HOST is compared with srv->host ignoring
 * case, PORT (if the line names one) with srv->port; the first matching
 * line wins.  Returns 1 with *password (malloc'd, for
 * credentials_free) when found, 0 when no line matches, -EINVAL with
 * *bad_line (1-based) for a malformed line before a match, -ENOMEM. */
int credentials_lookup(const char *text, size_t len, const struct client_server *srv,
		       const char *user, char **password, unsigned *bad_line);

/* Reads the credentials file at path and looks user at srv up in it.  The
 * file must be a regular file owned by the user running tcpfile that
 * neither group nor others may access (mode 0600 or stricter), and at most
 * CREDENTIALS_FILE_MAX bytes.  Returns 1 (found, *password set), 0 (no
 * matching line), -ENOENT (no such file), -EPERM (refused: unsafe
 * permissions or owner), -EINVAL (malformed), -EFBIG or -errno; err says
 * why for every failure but -ENOENT. */
int credentials_read(const char *path, const struct client_server *srv, const char *user,
		     char **password, char *err, size_t errlen);

/* Writes prompt to the terminal tty_fd, reads one line with echo off and
 * restores the terminal, also when a signal ends (or stops) the process
 * meanwhile.  Returns 0 with *password (malloc'd, for credentials_free),
 * -ENOTTY (tty_fd is no terminal), -ENODATA (end of file or an empty
 * line), -EMSGSIZE (longer than CREDENTIALS_PASSWORD_MAX) or -errno. */
int credentials_prompt(int tty_fd, const char *prompt, char **password);

/* The password for user at srv: $TCPFILE_PASSWORD when set and not empty
 * (then wiped from the environment, so it does not linger in
 * /proc/PID/environ), else the credentials file's line, else a prompt on
 * /dev/tty.  Returns 0 with *password (for credentials_free), or a
 * negative errno with why in err: -EPERM / -EINVAL for a credentials
 * file refused, -ENOKEY when no source has a password. */
int credentials_get(const struct client_server *srv, const char *user, char **password,
		    char *err, size_t errlen);

/* Wipes and frees a password; NULL is a no-op. */
void credentials_free(char *password);
