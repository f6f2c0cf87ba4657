package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// sessionCookie holds the token the supervisor signed in with. The page keeps no sessions of
// its own: every request asks Authorize again, so a token taken out of the configuration
// stops working on the page at the next request, and every daemon behind a load balancer
// accepts the same cookie.
const sessionCookie = "callbackd_session"

// session is a signed-in request: what its token may do, and what its form token is made of.
type session struct {
	Access
	token string
	// nonce is drawn at sign-in and kept in the cookie beside the token, so each sign-in has
	// form tokens of its own.
	nonce []byte
}

// formToken is the per-session token every form of the page carries: a MAC of the session's
// nonce keyed by its token. Another site, which cannot read the cookie, cannot make it, and
// every daemon behind a load balancer makes the same one. Without a token (none configured)
// there is no secret to key it with, and the handler's own random key stands in.
func (h *Handler) formToken(s session) string {
	key := []byte(s.token)
	if s.token == "" {
		key = h.anonymousKey
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("callbackd supervisor page form\x00"))
	m.Write(s.nonce)
	return hex.EncodeToString(m.Sum(nil))
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}

// validForm reports whether r's form carries s's form token.
func (h *Handler) validForm(r *http.Request, s session) bool {
	got := r.PostFormValue("csrf")
	return subtle.ConstantTimeCompare([]byte(got), []byte(h.formToken(s))) == 1
}

// session returns who r comes from: the token of its cookie, or no token at all where the
// daemon asks for none. False when neither may read the page.
func (h *Handler) session(r *http.Request) (session, bool) {
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		n, t, ok := strings.Cut(c.Value, ".")
		nonce, err1 := base64.RawURLEncoding.DecodeString(n)
		token, err2 := base64.RawURLEncoding.DecodeString(t)
		if !ok || err1 != nil || err2 != nil || len(nonce) == 0 {
			return session{}, false
		}
		s, ok := h.authorize(string(token))
		s.nonce = nonce
		return s, ok
	}
	return h.authorize("")
}

func (h *Handler) authorize(token string) (session, bool) {
	a, ok := h.o.Authorize(token)
	if !ok || !a.Read {
		return session{}, false
	}
	return session{Access: a, token: token}, true
}

// signIn keeps token in an HttpOnly cookie, out of reach of scripts and, being
// SameSite=Strict, never sent with a request another site starts; then it sends the browser
// to the page without the token in its address bar or history. The cookie holds the nonce and
// the token in base64, as a token may hold bytes a cookie may not.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request, token string) {
	nonce, err := randomBytes(16)
	if err != nil {
		h.o.Logger.Error("supervisor page: drawing a session nonce failed", zap.Error(err))
		http.Error(w, "signing in failed; see the daemon's log", http.StatusInternalServerError)
		return
	}
	value := base64.RawURLEncoding.EncodeToString(nonce) + "." + base64.RawURLEncoding.EncodeToString([]byte(token))
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// login signs in with the token typed into the login form.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	token := r.PostFormValue("token")
	if _, ok := h.authorize(token); !ok || token == "" {
		h.loginPage(w, http.StatusUnauthorized, "That token is not accepted, or may not read the page.")
		return
	}
	h.signIn(w, r, token)
}

// logout forgets the cookie. It needs the form token, so another site cannot sign a
// supervisor out.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if s, ok := h.session(r); ok && !h.validForm(r, s) {
		http.Error(w, "the form is stale or not from this page: reload the page and try again", http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *Handler) loginPage(w http.ResponseWriter, status int, problem string) {
	h.render(w, status, "login.html", struct{ Problem string }{problem})
}
