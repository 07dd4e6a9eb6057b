package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoginLimits(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.LoginPair != (RateLimit{5, 30 * time.Second}) || c.LoginAddress != (RateLimit{20, 5 * time.Second}) ||
		c.LoginAccount != (RateLimit{100, 10 * time.Second}) || c.LoginHashes != 2 || c.LoginHashQueue != 16 {
		t.Fatalf("defaults: %+v %+v %+v %d %d", c.LoginPair, c.LoginAddress, c.LoginAccount, c.LoginHashes, c.LoginHashQueue)
	}
	c, err = Load(env(map[string]string{"LOGIN_LIMIT_PAIR": " 3 / 1m ", "LOGIN_HASH_QUEUE": "0"}))
	if err != nil || c.LoginPair != (RateLimit{3, time.Minute}) || c.LoginHashQueue != 0 {
		t.Fatalf("3/1m: %+v %v", c.LoginPair, err)
	}
	for name, v := range map[string]string{"LOGIN_LIMIT_PAIR": "5", "LOGIN_LIMIT_ADDRESS": "x/5s", "LOGIN_LIMIT_ACCOUNT": "0/10s", "LOGIN_HASH_CONCURRENCY": "0"} {
		if _, err := Load(env(map[string]string{name: v})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: want an error naming it, got %v", name, v, err)
		}
	}
}
