package testkit

import "sync"

// Repeat calls each(w) over and over in n goroutines (w is 0 to n-1) until
// stop closes: a steady load of clients. The returned wait blocks until
// every goroutine has seen stop and returned; call it after closing stop.
func Repeat(n int, stop <-chan struct{}, each func(w int)) (wait func()) {
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
				each(w)
			}
		}()
	}
	return wg.Wait
}
