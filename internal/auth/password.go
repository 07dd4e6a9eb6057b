package auth

import (
	"errors"
	"fmt"

	"github.com/alexedwards/argon2id"
)

// HashParams are the argon2id parameters of new password hashes: OWASP's
// recommended minimum (19 MiB, 2 passes, 1 lane). Existing hashes carry their own.
var HashParams = argon2id.Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// MinPasswordLength is the shortest password accepted for an admin.
const MinPasswordLength = 10

// ErrWeakPassword is returned for a password that is too short.
var ErrWeakPassword = fmt.Errorf("password must have at least %d characters", MinPasswordLength)

// HashPassword returns an argon2id hash of password.
func HashPassword(password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", ErrWeakPassword
	}
	h, err := argon2id.CreateHash(password, &HashParams)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return h, nil
}

// dummyHash is compared against when the email is unknown, so that an unknown
// email costs as much time as a wrong password.
var dummyHash = func() string {
	h, err := argon2id.CreateHash("shopstream-no-such-user", &HashParams)
	if err != nil {
		panic(err)
	}
	return h
}()

func checkPassword(password, hash string) (bool, error) {
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if errors.Is(err, argon2id.ErrInvalidHash) {
		return false, nil
	}
	return ok, err
}
