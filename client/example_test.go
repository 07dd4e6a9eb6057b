package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/shopstream/shopstream/client"
)

// Log in, follow the pending orders and the products, and print each change
// until SIGINT. It needs a running server, so it has no output to check.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c, err := client.New("http://127.0.0.1:3000")
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Login(ctx, "ops@example.com", os.Getenv("SHOPSTREAM_PASSWORD")); err != nil {
		var le *client.LoginError
		if errors.As(err, &le) && le.RetryAfter > 0 {
			log.Fatalf("%v: try again in %s", err, le.RetryAfter)
		}
		log.Fatal(err)
	}
	s, err := c.Stream(ctx,
		client.Subscription{Channel: client.Channel("order"), Filter: []byte(`{"status":"pending"}`)},
		client.Subscription{Channel: "product_changes", Actions: []string{client.ActionCreated, client.ActionUpdated}},
	)
	if err != nil {
		log.Fatal(err)
	}
	for m := range s.Messages() {
		switch m := m.(type) {
		case client.Event:
			fmt.Println(m.ID, m.Timestamp.Format("15:04:05"), m.Name(), string(m.Data), string(m.Changed))
		case client.Notice:
			if m.Kind == client.NoticeResync {
				fmt.Println("missed some events of", m.Channel, "- reload")
			}
			log.Print(m)
		}
	}
	if err := s.Err(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("resume later with Since from", s.Positions())
}
