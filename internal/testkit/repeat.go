package testkit

import "sync"

// Repeat calls each(w) over and over in n goroutines (w is 0 to n-1) until
// stop closes or each returns false: a steady load of clients. The
// returned wait blocks until every goroutine has returned.
func Repeat(n int, stop <-chan struct{}, each func(w int) bool) (wait func()) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !each(w) {
					return
				}
			}
		}()
	}
	return wg.Wait
}
