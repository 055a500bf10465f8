package testenv_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/meshward/meshward/internal/testenv"
)

func TestStartNginx(t *testing.T) {
	n := testenv.StartNginx(t, `		location / { return 200 "hello from nginx"; }`)
	resp, err := http.Get("http://" + n.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "hello from nginx" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}
