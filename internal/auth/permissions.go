package auth

import (
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/sluice-ci/sluice/internal/bus"
)

// Templates the server fills in per user when it checks a permission.
const (
	tmplName    = "{{name()}}"
	tmplSubject = "{{subject()}}"
	tmplPool    = "{{tag(pool)}}"
)

// js builds JetStream API subjects.
func js(parts ...string) string {
	s := "$JS.API"
	for _, p := range parts {
		s += "." + p
	}
	return s
}

// Permissions is the template of role r under names n: what every user of r may publish
// and subscribe to. Anything not listed is denied by the server.
func Permissions(r Role, n bus.Names) jwt.Permissions {
	p := perms{}
	// Replies: each user may read only its own inbox.
	p.sub(bus.InboxPrefix(tmplSubject) + ".>")
	switch r {
	case RoleAdmin:
		return jwt.Permissions{
			Pub:  jwt.Permission{Allow: jwt.StringList{">"}},
			Sub:  jwt.Permission{Allow: jwt.StringList{">"}},
			Resp: &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
		}
	case RoleCoordinator:
		p.coordinator(n)
	case RoleSubmitter, RoleApprover, RoleObserver:
		p.client(r, n)
	default:
		kind, ok := r.Kind()
		if !ok {
			return jwt.Permissions{Pub: jwt.Permission{Deny: jwt.StringList{">"}}, Sub: jwt.Permission{Deny: jwt.StringList{">"}}}
		}
		p.worker(r, kind.Slug(), n)
	}
	return p.Permissions
}

type perms struct{ jwt.Permissions }

func (p *perms) pub(s ...string) { p.Pub.Allow.Add(s...) }
func (p *perms) sub(s ...string) { p.Sub.Allow.Add(s...) }

// coordinator: the only role that writes run state, locks, tasks, events and cancel
// signals, and serves the run API. It provisions the streams, so it has the whole
// JetStream API.
func (p *perms) coordinator(n bus.Names) {
	p.pub("$JS.API.>", "$JS.ACK.>", "$JS.FC.>",
		n.Prefix+".task.>", n.Prefix+".event.>", n.Prefix+".control.>")
	// What it never needs: removing streams, or copying one out (a snapshot is delivered to
	// any subject the requester names).
	p.Pub.Deny.Add("$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.SNAPSHOT.>", "$JS.API.STREAM.RESTORE.>",
		"$JS.API.ACCOUNT.PURGE.>", "$JS.API.META.>", "$JS.API.SERVER.>")
	for _, b := range []string{n.RunsBucket(), n.LocksBucket(), n.SecretsBucket(), n.TimingsBucket()} {
		p.pub("$KV." + b + ".>")
	}
	// Evidence is an artifact the coordinator writes.
	p.pub("$O." + n.ArtifactsStore() + ".>")
	p.sub(n.APIGroup()+".>", "$SRV.>")
	// Replies to run API requests, whatever inbox they name.
	p.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
}

// worker: pulls its kind's tasks from its pools' consumers only, publishes results only
// under its own name, writes logs and artifacts, reads sources, hears cancel signals.
func (p *perms) worker(r Role, kind string, n bus.Names) {
	tasks := n.TasksStream()
	cons := n.WorkerConsumer(kind, tmplPool)
	p.pub(
		n.Prefix+".result.*."+string(r)+"."+tmplName,
		n.Prefix+".log.*.*",
		js("CONSUMER", "CREATE", tasks, cons, n.TaskFilter(kind, tmplPool)),
		js("CONSUMER", "INFO", tasks, cons),
		js("CONSUMER", "MSG", "NEXT", tasks, cons),
		"$JS.ACK."+tasks+"."+cons+".>",
	)
	p.objectRead(n.SourcesStore())
	p.objectWrite(n.ArtifactsStore())
	// Its heartbeat, under its kind and its own user name only.
	p.pub("$KV." + n.WorkersBucket() + "." + n.WorkerKey(kind, tmplName, "*"))
	if kind == "test" || kind == "e2e" {
		// Durations for balanced shards, and the split every shard of an attempt uses.
		kv := bus.KVStream(n.TimingsBucket())
		p.pub(js("STREAM", "INFO", kv), js("DIRECT", "GET", kv, ">"), "$KV."+n.TimingsBucket()+".>")
	}
	p.sub(n.AllCancels())
}

// client: the people and systems that use a fleet. They call the run API verbs of their
// role under their own name and read events, logs and artifacts; submitters upload sources.
func (p *perms) client(r Role, n bus.Names) {
	for _, v := range Verbs() {
		if r.Allows(v) {
			p.pub(n.APIGroup() + "." + string(v) + "." + string(r) + "." + tmplName)
		}
	}
	for _, s := range []string{n.EventsStream(), n.LogsStream()} {
		p.pub(js("STREAM", "INFO", s), js("STREAM", "MSG", "GET", s),
			js("CONSUMER", "CREATE", s, ">"), js("CONSUMER", "MSG", "NEXT", s, "*"),
			js("CONSUMER", "INFO", s, "*"), js("CONSUMER", "DELETE", s, "*"))
	}
	p.objectRead(n.ArtifactsStore())
	p.kvRead(n.WorkersBucket())
	// Acks of its own notifier's consumer (sluice notify), not of anyone else's.
	p.pub("$JS.ACK." + n.EventsStream() + "." + n.NotifyConsumer(tmplName) + ".>")
	if r == RoleSubmitter {
		p.objectWrite(n.SourcesStore())
	}
}

// kvRead allows reading a KV bucket: its info, a key, and its keys through a watch.
func (p *perms) kvRead(bucket string) {
	s := bus.KVStream(bucket)
	p.pub(js("STREAM", "INFO", s), js("DIRECT", "GET", s, ">"),
		js("CONSUMER", "CREATE", s), js("CONSUMER", "CREATE", s, ">"), js("CONSUMER", "DELETE", s, "*"),
		"$JS.FC."+s+".>")
}

// objectRead allows getting objects of one store: their metadata by name, then their chunks
// through an ordered consumer.
func (p *perms) objectRead(bucket string) {
	s := bus.ObjectStream(bucket)
	p.pub(js("STREAM", "INFO", s), js("DIRECT", "GET", s, "$O."+bucket+".M.*"),
		js("CONSUMER", "CREATE", s), js("CONSUMER", "CREATE", s, ">"), js("CONSUMER", "DELETE", s, "*"),
		"$JS.FC."+s+".>")
}

// objectWrite allows putting new objects into one store: metadata lookups (Put checks for an
// object of the same name) and chunk and metadata publishes. No purge: a writer cannot
// remove what others stored.
func (p *perms) objectWrite(bucket string) {
	s := bus.ObjectStream(bucket)
	p.pub(js("STREAM", "INFO", s), js("DIRECT", "GET", s, "$O."+bucket+".M.*"),
		"$O."+bucket+".C.*", "$O."+bucket+".M.*")
}
