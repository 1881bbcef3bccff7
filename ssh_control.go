package netrunner

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// A control is the one long-lived session per Host that signals remote
// process groups, since sshd ignores the SSH "signal" request. It runs
// controlScript, a loop in the remote shell that reads one request a line
// and answers each with its id and kill's status:
//
//	ID watch - PGID    remember the group, to kill if the connection ends
//	ID forget - PGID   the group is gone: forget it
//	ID kill SIG PGID   kill -s SIG -- -PGID (SIG 0 asks whether it exists)
//
// When its stdin ends (the connection is closed or lost, the Go program
// died, sshd ended the session), the loop SIGKILLs every group still
// watched. It ignores SIGHUP and SIGPIPE so that a lost connection cannot
// end it before that.
type control struct {
	host  string // for errors
	sess  ssh.Channel
	write sync.Mutex // serialises requests on sess

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan int
	dead    chan struct{} // closed when the session is over
	err     error         // why it is over
}

const controlScript = `trap '' HUP PIPE
groups=
while IFS=' ' read -r id op sig pg; do
	case $op in
	watch) groups="$groups $pg"; echo "$id 0" ;;
	forget)
		rest=
		for g in $groups; do [ "$g" = "$pg" ] || rest="$rest $g"; done
		groups=$rest
		echo "$id 0" ;;
	kill) kill -s "$sig" -- "-$pg" 2>/dev/null; echo "$id $?" ;;
	*) echo "$id 2" ;;
	esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
`

// controlTimeout bounds a control request's round trip: past it, the
// connection is taken as lost.
const controlTimeout = 30 * time.Second

// startControl starts a control session on client; ended runs when it ends.
func startControl(client *ssh.Client, host string, ended func(*control)) (*control, error) {
	ch, err := openSession(client, host)
	if err != nil {
		return nil, err
	}
	if err := execRequest(ch, "exec sh -c "+shellQuote(controlScript)); err != nil {
		ch.Close()
		return nil, fmt.Errorf("control session: %w", err)
	}
	c := &control{host: host, sess: ch, pending: map[uint64]chan int{}, dead: make(chan struct{})}
	go func() {
		c.readAnswers()
		ended(c)
	}()
	return c, nil
}

// readAnswers delivers each answer to its request until the session ends.
func (c *control) readAnswers() {
	r := bufio.NewReader(c.sess)
	var err error
	for {
		var line string
		if line, err = r.ReadString('\n'); err != nil {
			break
		}
		idText, rcText, _ := strings.Cut(strings.TrimSpace(line), " ")
		id, ierr := strconv.ParseUint(idText, 10, 64)
		rc, rerr := strconv.Atoi(rcText)
		if ierr != nil || rerr != nil {
			err = fmt.Errorf("unexpected answer %q", line)
			break
		}
		c.mu.Lock()
		if ch, ok := c.pending[id]; ok {
			delete(c.pending, id)
			ch <- rc
		}
		c.mu.Unlock()
	}
	if err == io.EOF {
		err = errors.New("the session ended")
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%s: control session: %w", c.host, err)
	close(c.dead)
	c.mu.Unlock()
	c.sess.Close()
}

// send writes a request and returns the channel its answer comes on.
func (c *control) send(op, sig string, pgid int) (<-chan int, error) {
	c.mu.Lock()
	select {
	case <-c.dead:
		c.mu.Unlock()
		return nil, c.err
	default:
	}
	c.next++
	id := c.next
	answer := make(chan int, 1)
	c.pending[id] = answer
	c.mu.Unlock()
	c.write.Lock()
	_, err := fmt.Fprintf(c.sess, "%d %s %s %d\n", id, op, sig, pgid)
	c.write.Unlock()
	if err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: control session: %w", c.host, err)
	}
	return answer, nil
}

// request sends a request and waits for kill's status.
func (c *control) request(op, sig string, pgid int) (int, error) {
	answer, err := c.send(op, sig, pgid)
	if err != nil {
		return 0, err
	}
	timeout := time.NewTimer(controlTimeout)
	defer timeout.Stop()
	select {
	case rc := <-answer:
		return rc, nil
	case <-c.dead:
		return 0, c.err
	case <-timeout.C:
		return 0, fmt.Errorf("%s: control session: no answer in %v", c.host, controlTimeout)
	}
}

// alive reports whether the group has a member.
func (c *control) alive(pgid int) bool {
	rc, err := c.request("kill", "0", pgid)
	return err == nil && rc == 0
}

// isDead reports whether the control session is over.
func (c *control) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}
