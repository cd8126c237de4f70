/*  db_private.h: what db.c shares with db_copy.c. Not for other modules.  */
#ifndef ASY_DB_PRIVATE_H_INCLUDED
#define ASY_DB_PRIVATE_H_INCLUDED

#include "db.h"

/* Sets the text asy_db_errmsg() returns: "STATE: message" (its first line), or the message
   alone when state is NULL ("unknown error" when it is empty). */
void asy_db_set_error(asy_db_t *self, const char *state, const char *message);

#endif
