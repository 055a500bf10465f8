package opaplugin

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/storage"
)

// opaPrefix is put before the id of a module from OPA's store whose id is
// also the path of a .rego file of the mesh directory.
const opaPrefix = "opa:"

// compilerChanged is OPA's compiler trigger: policies were added, changed
// or removed (a bundle activated, a PUT /v1/policies, ...). It runs inside
// OPA's commit, so it reads the policies in that transaction.
func (p *Plugin) compilerChanged(txn storage.Transaction) {
	ctx := context.Background()
	modules, err := p.readPolicies(ctx, txn)
	p.mu.Lock()
	p.opaSeq++
	if err != nil {
		p.policyErr = err
		p.mu.Unlock()
		p.log.Error(err, "OPA's policies not read; the previous policy stays in force")
		go p.report()
		return
	}
	if equalModules(modules, p.opaModules) {
		p.mu.Unlock()
		return
	}
	p.opaModules = modules
	if p.engine != nil {
		p.applyModules(ctx)
	}
	running := p.running
	p.mu.Unlock()
	if running {
		// Not inside OPA's commit: the status listeners are not ours.
		go p.report()
	}
}

// readPolicies returns the modules of OPA's store (id -> source), in txn
// or, when txn is nil, in a read transaction of its own.
func (p *Plugin) readPolicies(ctx context.Context, txn storage.Transaction) (map[string]string, error) {
	store := p.manager.Store
	read := func(txn storage.Transaction) (map[string]string, error) {
		ids, err := store.ListPolicies(ctx, txn)
		if err != nil {
			return nil, err
		}
		out := make(map[string]string, len(ids))
		for _, id := range ids {
			src, err := store.GetPolicy(ctx, txn, id)
			if err != nil {
				return nil, err
			}
			out[id] = string(src)
		}
		return out, nil
	}
	var out map[string]string
	var err error
	if txn != nil {
		out, err = read(txn)
	} else {
		err = storage.Txn(ctx, store, storage.TransactionParams{}, func(txn storage.Transaction) error {
			out, err = read(txn)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("reading OPA's policies: %w", err)
	}
	return out, nil
}

// applyModules compiles the user Rego (the mesh directory's and OPA's)
// into the engine and reports whether it is in force. When it does not
// compile the previous policy stays in force and the status says why.
// Called with mu held.
func (p *Plugin) applyModules(ctx context.Context) bool {
	modules := p.userModules()
	if err := p.engine.SetUserModules(ctx, modules); err != nil {
		p.policyErr = err
		p.log.Error(err, "user policy not loaded")
		return false
	}
	p.policyErr, p.applied = nil, modules
	p.log.V(1).Info("user policy loaded", "modules", slices.Sorted(maps.Keys(modules)))
	return true
}

// userModules merges the .rego files of the mesh directory with OPA's
// modules; an OPA module whose id is taken gets the prefix "opa:".
// Called with mu held.
func (p *Plugin) userModules() map[string]string {
	out := make(map[string]string, len(p.meshModules)+len(p.opaModules))
	maps.Copy(out, p.meshModules)
	for id, src := range p.opaModules {
		if _, taken := out[id]; taken {
			id = opaPrefix + id
		}
		out[id] = src
	}
	return out
}

func equalModules(a, b map[string]string) bool {
	return len(a) == len(b) && maps.Equal(a, b)
}

func cloneModules(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}
