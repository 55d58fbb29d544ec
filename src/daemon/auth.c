/* auth: the server side of a SCRAM-SHA-256(-PLUS) login, driven through GNU
 * SASL from stored verifiers only; no I/O. */
#include "auth.h"

#include <errno.h>
#include <gsasl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "passwd.h"
#include "scram.h"

#define AUTH_MOCK_KEY_LEN 32

static Gsasl *auth_gsasl;
static unsigned char auth_mock_key[AUTH_MOCK_KEY_LEN];

struct auth {
	Gsasl_session *session;
	const struct users *users;
	char *claimed;          /* name from client-first, as sent */
	const char *reason;     /* why it failed, for the log */
	bool mock;              /* made-up exchange: can only fail */
	bool done;
	bool success;
};

static int auth_from_gsasl(int rc)
{
	return rc == GSASL_MALLOC_ERROR ? -ENOMEM : -EIO;
}

/* base64 of len bytes into a property. */
static int auth_set_base64(Gsasl_session *s, Gsasl_property prop, const void *bin, size_t len)
{
	char *b64 = NULL;
	int rc;

	rc = gsasl_base64_to(bin, len, &b64, NULL);
	if (rc != GSASL_OK)
		return rc;
	rc = gsasl_property_set(s, prop, b64);
	gsasl_free(b64);
	return rc;
}

static int auth_set_iterations(Gsasl_session *s, uint32_t iterations)
{
	char num[16];

	snprintf(num, sizeof(num), "%u", (unsigned)iterations);
	return gsasl_property_set(s, GSASL_SCRAM_ITER, num);
}

/* What PostgreSQL does for a name it does not know: a salt that is the
 * same for that name on every connection (HMAC of the name under a key
 * that lives as long as the master), the iteration count real users have,
 * and keys nobody can match. */
static int auth_supply_mock(struct auth *a, Gsasl_session *s, const char *name)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	char key[USERS_KEY_LEN];
	unsigned maclen = 0;
	uint32_t iterations;
	int rc;

	a->mock = true;
	iterations = a->users && a->users->common_iterations ?
		     a->users->common_iterations : PASSWD_ITERATIONS_DEFAULT;
	if (!HMAC(EVP_sha256(), auth_mock_key, sizeof(auth_mock_key),
		  (const unsigned char *)name, strlen(name), mac, &maclen) ||
	    maclen < PASSWD_SALT_LEN)
		return GSASL_CRYPTO_ERROR;
	rc = auth_set_iterations(s, iterations);
	if (rc == GSASL_OK)
		rc = auth_set_base64(s, GSASL_SCRAM_SALT, mac, PASSWD_SALT_LEN);
	if (rc == GSASL_OK)
		rc = gsasl_random(key, sizeof(key));
	if (rc == GSASL_OK)
		rc = auth_set_base64(s, GSASL_SCRAM_STOREDKEY, key, sizeof(key));
	if (rc == GSASL_OK)
		rc = gsasl_random(key, sizeof(key));
	if (rc == GSASL_OK)
		rc = auth_set_base64(s, GSASL_SCRAM_SERVERKEY, key, sizeof(key));
	return rc;
}

/* GNU SASL asks for the iteration count right after it read the name from
 * client-first; the salt and both keys are set at the same time so it
 * never has to ask for them, and never falls back to a password. */
static int auth_supply_verifier(struct auth *a, Gsasl_session *s)
{
	const char *name = gsasl_property_fast(s, GSASL_AUTHID);
	const char *authzid = gsasl_property_fast(s, GSASL_AUTHZID);
	const struct user *u = NULL;
	int rc;

	if (!name)
		return GSASL_NO_AUTHID;
	free(a->claimed);
	a->claimed = strdup(name);
	if (!a->claimed)
		return GSASL_MALLOC_ERROR;
	/* Logging in as someone else is not a feature: such a client gets
	 * the same made-up exchange as an unknown name. */
	if (!authzid || strcmp(authzid, name) == 0)
		u = users_find(a->users, name);
	if (!u)
		return auth_supply_mock(a, s, name);
	rc = auth_set_iterations(s, u->iterations);
	if (rc == GSASL_OK)
		rc = gsasl_property_set(s, GSASL_SCRAM_SALT, u->salt);
	if (rc == GSASL_OK)
		rc = gsasl_property_set(s, GSASL_SCRAM_STOREDKEY, u->stored_key);
	if (rc == GSASL_OK)
		rc = gsasl_property_set(s, GSASL_SCRAM_SERVERKEY, u->server_key);
	return rc;
}

static int auth_callback(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop)
{
	struct auth *a = gsasl_session_hook_get(s);

	if (a && prop == GSASL_SCRAM_ITER)
		return auth_supply_verifier(a, s);
	/* Everything else (a password, tls-unique, ...) stays unknown. */
	return GSASL_NO_CALLBACK;
}

int auth_init(void)
{
	ssize_t n;
	int rc;

	if (auth_gsasl)
		return 0;
	do
		n = getrandom(auth_mock_key, sizeof(auth_mock_key), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(auth_mock_key))
		return -EIO;
	rc = gsasl_init(&auth_gsasl);
	if (rc != GSASL_OK) {
		auth_gsasl = NULL;
		return auth_from_gsasl(rc);
	}
	if (!gsasl_server_support_p(auth_gsasl, AUTH_MECH_SCRAM) ||
	    !gsasl_server_support_p(auth_gsasl, AUTH_MECH_SCRAM_PLUS)) {
		auth_done();
		return -EPROTONOSUPPORT;
	}
	gsasl_callback_set(auth_gsasl, auth_callback);
	return 0;
}

bool auth_ready(void)
{
	return auth_gsasl != NULL;
}

void auth_done(void)
{
	if (!auth_gsasl)
		return;
	gsasl_done(auth_gsasl);
	auth_gsasl = NULL;
	explicit_bzero(auth_mock_key, sizeof(auth_mock_key));
}

const char *auth_mechanism(bool channel_binding)
{
	return channel_binding ? AUTH_MECH_SCRAM_PLUS : AUTH_MECH_SCRAM;
}

int auth_start(struct auth **out, const char *mech, const struct users *users,
	       const unsigned char *cb, size_t cblen)
{
	struct auth *a;
	int rc, r;

	if (!auth_gsasl)
		return -EINVAL;
	if (!cb)
		cblen = 0;
	if (cblen > AUTH_CB_MAX)
		return -EINVAL;
	if (!mech || strcmp(mech, auth_mechanism(cblen > 0)) != 0)
		return -EPROTONOSUPPORT;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->users = users;
	rc = gsasl_server_start(auth_gsasl, mech, &a->session);
	if (rc != GSASL_OK) {
		r = auth_from_gsasl(rc);
		goto err_free;
	}
	gsasl_session_hook_set(a->session, a);
	if (cblen > 0) {
		rc = auth_set_base64(a->session, GSASL_CB_TLS_EXPORTER, cb, cblen);
		if (rc != GSASL_OK) {
			r = auth_from_gsasl(rc);
			goto err_finish;
		}
	}
	*out = a;
	return 0;

err_finish:
	gsasl_finish(a->session);
err_free:
	free(a);
	return r;
}

static const char *auth_reason(const struct auth *a, int rc)
{
	if (a->mock)
		return "unknown user";
	switch (rc) {
	case GSASL_AUTHENTICATION_ERROR:
		return "wrong password, replayed message or channel binding mismatch";
	case GSASL_MECHANISM_PARSE_ERROR:
	case GSASL_BASE64_ERROR:
		return "malformed SCRAM message";
	case GSASL_NO_CB_TLS_UNIQUE:
	case GSASL_NO_CB_TLS_EXPORTER:
		return "unsupported channel binding type";
	case GSASL_MECHANISM_CALLED_TOO_MANY_TIMES:
		return "message after the end of the exchange";
	default:
		return gsasl_strerror(rc);
	}
}

int auth_step(struct auth *a, const char *in, size_t inlen, char **out, size_t *outlen)
{
	char *o = NULL;
	size_t olen = 0;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (a->done) {
		a->success = false;
		a->reason = "message after the end of the exchange";
		return AUTH_FAILURE;
	}
	rc = gsasl_step(a->session, in, inlen, &o, &olen);
	if (rc == GSASL_MALLOC_ERROR) {
		gsasl_free(o);
		return -ENOMEM;
	}
	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		gsasl_free(o);
		a->done = true;
		a->reason = auth_reason(a, rc);
		return AUTH_FAILURE;
	}
	if (rc == GSASL_OK && a->mock) {
		/* A made-up verifier cannot be matched, but never let it in. */
		gsasl_free(o);
		a->done = true;
		a->reason = auth_reason(a, rc);
		return AUTH_FAILURE;
	}
	if (scram_take_output(o, olen, out, outlen) < 0)
		return -ENOMEM;
	if (rc == GSASL_NEEDS_MORE)
		return AUTH_CONTINUE;
	a->done = true;
	a->success = true;
	return AUTH_SUCCESS;
}

const char *auth_user(const struct auth *a)
{
	return a && a->success ? a->claimed : NULL;
}

const char *auth_claimed_user(const struct auth *a)
{
	return a ? a->claimed : NULL;
}

const char *auth_failure_reason(const struct auth *a)
{
	return a && a->done && !a->success ? a->reason : NULL;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	gsasl_finish(a->session);
	free(a->claimed);
	free(a);
}
