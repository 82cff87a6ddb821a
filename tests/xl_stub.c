/*
 * LD_PRELOAD stub that lets `xl -N create FILE` parse an xl config on a machine without a
 * hypervisor.  xl allocates a libxl context (which opens the hypervisor's privcmd device)
 * and asks for the host's version, CPU count and physinfo before and while it parses; these
 * stand-ins answer without a hypervisor.  The parser itself (libxlutil, xl's
 * parse_config_data) and the JSON printer (libxl_domain_config_to_json) are the real ones.
 *
 * No libxl headers are needed: every stub takes or returns opaque pointers, and an
 * unversioned definition in a preloaded object satisfies xl's versioned references.
 */
#include <stdlib.h>

int libxl_ctx_alloc(void **pctx, int version, unsigned flags, void *logger)
{
	(void)version, (void)flags, (void)logger;
	/* opaque to xl; libxl only dereferences it to log, which a parse that succeeds never does */
	*pctx = calloc(1, 1 << 16);
	return *pctx ? 0 : -1;
}

int libxl_ctx_free(void *ctx)
{
	free(ctx);
	return 0;
}

void libxl_childproc_setmode(void *ctx, const void *hooks, void *user)
{
	(void)ctx, (void)hooks, (void)user;
}

/* NULL: xl then takes autoballoon as on, as it does when the version is unknown */
const void *libxl_get_version_info(void *ctx)
{
	(void)ctx;
	return NULL;
}

int libxl_get_max_cpus(void *ctx)
{
	(void)ctx;
	return 4;
}

int libxl_get_max_nodes(void *ctx)
{
	(void)ctx;
	return 1;
}

/* the caller zeroed *physinfo with libxl_physinfo_init: no capability is claimed */
int libxl_get_physinfo(void *ctx, void *physinfo)
{
	(void)ctx, (void)physinfo;
	return 0;
}
