/* io/config_internal: what config.c and config_yaml.c share (not part of the io/ interface). */
#ifndef SC_IO_CONFIG_INTERNAL_H
#define SC_IO_CONFIG_INTERNAL_H
#include "io/config.h"

#define CONFIG_MSG 768 /* the longest message of a config error */

/* every key at its schema default (before the recipe defaults of config_resolve) */
void config_static_defaults(sc_config *cfg);

#endif
