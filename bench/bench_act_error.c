/* The activations' error against double on the path this process runs
 * (docs/perf.md, "Fused and vectorised elementwise ops"):
 *
 *   LWC_CPU_PATH=scalar|avx2|avx512 out/bench/bench_act_error
 *
 * Sweeps x over [-12, 12] in steps of 1e-4 through glu_forward (up = 1) and
 * glu_backward (dout = 1, the derivative), SiLU and GELU-tanh, and prints the
 * largest absolute error and the largest relative one (where |want| > 1e-6)
 * of the value and of the derivative, against the same formulas in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "ops.h"
#include "cpu_path.h"
static double gref(double x){return 0.5*x*(1+tanh(0.7978845608028654*(x+0.044715*x*x*x)));}
static double sref(double x){return x/(1+exp(-x));}
static double dref(double x,int gelu){double k=0.7978845608028654,c=0.044715;double z=gelu?2*k*(x+c*x*x*x):x,dz=gelu?2*k*(1+3*c*x*x):1;double s=1/(1+exp(-z));return s+x*s*(1-s)*dz;}
int main(void){
  int n=240001; float *x=malloc(n*4),*y=malloc(n*4),*one=malloc(n*4),*dx=calloc(n,4);
  for(int i=0;i<n;i++){x[i]=(float)(-12+i*1e-4);one[i]=1;}
  lw_cpu_path p; lw_cpu_path_get(&p);
  for(int gelu=0;gelu<2;gelu++){
    glu_forward(y,x,one,n,gelu?LW_ACT_GELU_TANH:LW_ACT_SILU);
    for(int i=0;i<n;i++)dx[i]=0;
    glu_backward(dx,NULL,one,x,one,n,gelu?LW_ACT_GELU_TANH:LW_ACT_SILU);
    double mr=0,ma=0,gr=0,ga=0;
    for(int i=0;i<n;i++){double w=gelu?gref(x[i]):sref(x[i]);double e=fabs(y[i]-w);ma=fmax(ma,e);if(fabs(w)>1e-6)mr=fmax(mr,e/fabs(w));
      double dw=dref(x[i],gelu);double de=fabs(dx[i]-dw);ga=fmax(ga,de);if(fabs(dw)>1e-6)gr=fmax(gr,de/fabs(dw));}
    printf("%-6s %-9s value: max|err| %.2e max rel %.2e | derivative: max|err| %.2e max rel %.2e\n",lw_cpu_path_name(p),gelu?"gelu_tanh":"silu",ma,mr,ga,gr);
  }
  return 0;}
