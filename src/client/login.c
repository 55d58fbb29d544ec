/* login: the client side of a SCRAM-SHA-256(-PLUS) login through GNU SASL;
 * no I/O. */
#include "login.h"

#include <errno.h>
#include <gsasl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "scram.h"

struct login {
	Gsasl *gsasl;
	Gsasl_session *session;
	const char *mech;
	bool done;
};

static int login_errno(int rc)
{
	return rc == GSASL_MALLOC_ERROR ? -ENOMEM : -EIO;
}

int login_start(struct login **out, const char *user, const char *password,
		const unsigned char *cb, size_t cblen)
{
	char *b64 = NULL;
	struct login *l;
	int rc, r;

	if (!user || !*user || !password || !*password)
		return -EINVAL;
	if (!cb)
		cblen = 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->mech = cblen ? LOGIN_MECH_SCRAM_PLUS : LOGIN_MECH_SCRAM;
	rc = gsasl_init(&l->gsasl);
	if (rc != GSASL_OK) {
		r = login_errno(rc);
		goto err_free;
	}
	rc = gsasl_client_start(l->gsasl, l->mech, &l->session);
	if (rc != GSASL_OK) {
		r = login_errno(rc);
		goto err_done;
	}
	rc = gsasl_property_set(l->session, GSASL_AUTHID, user);
	if (rc == GSASL_OK)
		rc = gsasl_property_set(l->session, GSASL_PASSWORD, password);
	if (rc == GSASL_OK && cblen) {
		rc = gsasl_base64_to((const char *)cb, cblen, &b64, NULL);
		if (rc == GSASL_OK)
			rc = gsasl_property_set(l->session, GSASL_CB_TLS_EXPORTER, b64);
		gsasl_free(b64);
	}
	if (rc != GSASL_OK) {
		r = login_errno(rc);
		goto err_finish;
	}
	*out = l;
	return 0;

err_finish:
	gsasl_finish(l->session);
err_done:
	gsasl_done(l->gsasl);
err_free:
	free(l);
	return r;
}

const char *login_mechanism(const struct login *l)
{
	return l->mech;
}

int login_step(struct login *l, const char *in, size_t inlen, char **out, size_t *outlen)
{
	char *o = NULL;
	size_t olen = 0;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (l->done)
		return LOGIN_FAILURE;
	rc = gsasl_step(l->session, in, inlen, &o, &olen);
	if (rc == GSASL_MALLOC_ERROR) {
		gsasl_free(o);
		return -ENOMEM;
	}
	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		gsasl_free(o);
		l->done = true;
		return LOGIN_FAILURE;
	}
	if (scram_take_output(o, olen, out, outlen) < 0)
		return -ENOMEM;
	if (rc == GSASL_NEEDS_MORE)
		return LOGIN_CONTINUE;
	l->done = true;
	return LOGIN_SUCCESS;
}

void login_free(struct login *l)
{
	if (!l)
		return;
	gsasl_finish(l->session);
	gsasl_done(l->gsasl);
	free(l);
}
