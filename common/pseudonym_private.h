/*  pseudonym_private.h: the NHS number checks pseudonym.c shares with pseudonym_nhs.c, which
    defines them. Not for other modules.  */
#ifndef ASY_PSEUDONYM_PRIVATE_H_INCLUDED
#define ASY_PSEUDONYM_PRIVATE_H_INCLUDED

#include "pseudonym.h"

/* True if digits[0..9] (ASCII) end in their modulus 11 check digit. */
bool asy_nhs_digits_check(const char digits[11]);

/* True if digits[0..9] are ten equal digits: a placeholder, never an issued number. */
bool asy_nhs_digits_placeholder(const char digits[11]);

#endif
