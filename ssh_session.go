package netrunner

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// The SSH session channel is driven directly rather than through
// ssh.Session, whose Wait returns only once the channel is closed: sshd
// sends the exit status when it reaps the program, but closes the channel
// only when every process holding its output has let go. The package must
// learn of the exit at once, to end what is left of the group, as it does
// for a local child.

// openSession opens a "session" channel; its requests are read by
// exitRequests, or discarded.
func openSession(client *ssh.Client, host string) (ssh.Channel, error) {
	if client == nil {
		return nil, fmt.Errorf("%s: nil *ssh.Client", host)
	}
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		return nil, fmt.Errorf("%s: open session: %w", host, err)
	}
	go ssh.DiscardRequests(reqs)
	return ch, nil
}

// openCommandSession is openSession for a command: its exit comes on the
// returned channel, once, as soon as sshd reports it, or as a zero
// remoteExit with ok false when the channel ends without it (the connection
// was lost, or sshd ended the session).
func openCommandSession(client *ssh.Client, host string) (ssh.Channel, <-chan remoteExit, error) {
	if client == nil {
		return nil, nil, fmt.Errorf("%s: nil *ssh.Client", host)
	}
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: open session: %w", host, err)
	}
	exit := make(chan remoteExit, 1)
	go exitRequests(reqs, exit)
	return ch, exit, nil
}

// remoteExit is how a remote program ended.
type remoteExit struct {
	ok     bool   // sshd reported the end
	code   int    // exit-status; -1 with a signal
	signal string // exit-signal's name, without "SIG"
}

// exitRequests reads the session's requests until the channel ends and
// sends the first exit-status or exit-signal on exit; requests are never
// answered positively, as a client should.
func exitRequests(reqs <-chan *ssh.Request, exit chan<- remoteExit) {
	sent := false
	for req := range reqs {
		var e remoteExit
		switch req.Type {
		case "exit-status":
			if len(req.Payload) >= 4 {
				e = remoteExit{ok: true, code: int(binary.BigEndian.Uint32(req.Payload))}
			}
		case "exit-signal":
			var msg struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}
			if ssh.Unmarshal(req.Payload, &msg) == nil {
				e = remoteExit{ok: true, code: -1, signal: msg.Signal}
			}
		}
		if req.WantReply {
			req.Reply(false, nil)
		}
		if e.ok && !sent {
			exit <- e
			sent = true
		}
	}
	if !sent {
		exit <- remoteExit{}
	}
}

// execRequest asks the session to run command.
func execRequest(ch ssh.Channel, command string) error {
	ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{command}))
	if err == nil && !ok {
		err = errors.New("the server refused the exec request")
	}
	return err
}

// ptyRequest asks for a pseudo-terminal of size ws, with the server's
// default modes (an empty mode list: just TTY_OP_END).
func ptyRequest(ch ssh.Channel, ws Winsize) error {
	req := struct {
		Term                       string
		Columns, Rows, Width, High uint32
		Modes                      string
	}{"xterm", uint32(ws.Cols), uint32(ws.Rows), 0, 0, "\x00"}
	ok, err := ch.SendRequest("pty-req", true, ssh.Marshal(&req))
	if err == nil && !ok {
		err = errors.New("the server refused the pty-req request")
	}
	return err
}

// windowChange tells the server the terminal's new size.
func windowChange(ch ssh.Channel, ws Winsize) error {
	req := struct{ Columns, Rows, Width, High uint32 }{uint32(ws.Cols), uint32(ws.Rows), 0, 0}
	_, err := ch.SendRequest("window-change", false, ssh.Marshal(&req))
	return err
}
